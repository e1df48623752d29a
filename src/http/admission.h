// HTTP connection admission: the clients' pool (bounded per address), the members' reserve, eviction, the body-bytes budget (pure; thread-safe).
//
// Why a reserve: a follower forwards writes to the leader's API, the same
// port outside clients use. Slow clients are pushed out by eviction (below),
// but busy ones are not: if 1,024 clients' requests are in progress (or
// their answers being written to readers that do not read), the members'
// forwarded writes would still be refused. So on top of the clients' pool
// there are member_connections slots that only a connection from a
// member's host may take, and only while the clients' pool (or its
// address's share) is full and nothing in it can be evicted. The server
// then insists that every request on such a connection is forwarded
// (kForwardedHeader) and closes it otherwise, so an outsider on a member's
// host cannot quietly use the reserve for ordinary requests.
//
// What the reserve does not stop (documented in docs/api.md): a process on
// a member's own host can connect from that address and, sending forwarded
// requests, use reserved slots like a member; on loopback every local
// process is on "a member's host". The source address of a TCP connection
// cannot be forged off-path (the handshake needs the server's answer), so
// remote outsiders cannot reach the reserve at all.
//
// Addresses are compared as text in their canonical form (see
// canonical_ip in server.cc: an IPv4-mapped IPv6 address as IPv4).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

namespace ckv::http {

struct AdmissionLimits {
  int max_connections = 0;         // outside clients' pool, all addresses together
  int max_connections_per_ip = 0;  // share of that pool one source address may hold
  int member_connections = 0;      // reserve for members' hosts, beyond max_connections
};

enum class Admitted {
  kClient,        // a slot in the clients' pool
  kMember,        // a reserved slot: every request must be forwarded by a member
  kRefusedTotal,  // clients' pool full (and not from a member's host, or the reserve is full too)
  kRefusedPerIp,  // this address holds its whole share (same condition on the reserve)
};

struct Admission {
  Admitted pool = Admitted::kRefusedTotal;
  uint64_t id = 0;     // for waiting/busy/release; 0 when refused
  uint64_t evict = 0;  // a connection the caller must close to make room; 0: none
};

// Eviction: a full pool does not refuse at once. A connection on which the
// server waits for the client (a request head or body not complete yet, or
// idle between requests) holds its slot only until it is needed: when a new connection
// finds the pool (or its address's share, or the reserve) full, the
// connection of that scope that has been waiting longest is evicted and the
// new one admitted. A genuine client's head arrives within milliseconds, a
// slowloris one never; so slow connections are the ones pushed out, even
// when they come from the same address as genuine clients (on loopback,
// everyone). Busy connections (the server handling a request or writing its
// answer) are never evicted; they are what the members' reserve is for.
// Until the evicted one is released, its pool may be over its limit by the
// evictions in flight (each is one waiting connection, closed at once).
class ConnectionAdmission {
 public:
  explicit ConnectionAdmission(AdmissionLimits limits) : limits_(limits) {}

  // Takes a slot for a connection from ip. from_member_host: ip is the host
  // of a member's raft or API address. An admitted connection starts
  // waiting; it must be released exactly once by its id.
  Admission admit(const std::string& ip, bool from_member_host);
  // The whole request is in and being handled (busy: not evictable) / the
  // connection waits for the client's next request (evictable, as the
  // youngest waiting).
  void busy(uint64_t id);
  void waiting(uint64_t id);
  void release(uint64_t id);

  int clients() const;
  int members() const;
  int clients_from(const std::string& ip) const;

 private:
  struct Conn {
    std::string ip;
    Admitted pool = Admitted::kClient;
    uint64_t waiting_since = 0;  // a sequence number; 0 while busy or evicted
  };
  // Waiting connections ordered by when they started waiting (oldest first).
  using WaitQueue = std::map<uint64_t, uint64_t>;  // waiting_since -> id

  // Oldest waiting connection in q: unqueued and marked evicted; 0 if none.
  uint64_t take_oldest(WaitQueue& q);
  void unqueue(Conn& c);
  // Queues c (not queued now) as the newest waiting connection of its pool.
  void enqueue(uint64_t id, Conn& c);
  uint64_t admit_locked(const std::string& ip, Admitted pool);

  const AdmissionLimits limits_;
  mutable std::mutex mu_;
  uint64_t next_id_ = 1;
  uint64_t next_seq_ = 1;
  int clients_ = 0;
  int members_ = 0;
  std::unordered_map<uint64_t, Conn> conns_;  // every admitted connection
  WaitQueue waiting_clients_;
  WaitQueue waiting_members_;
  struct PerIp {
    int clients = 0;
    WaitQueue waiting;
  };
  // Clients' pool per source address; an entry exists only while it holds a
  // slot, so the map is bounded by the connections admitted.
  std::unordered_map<std::string, PerIp> per_ip_;
};

// Request body bytes all connections may hold at once. Each connection's
// body is bounded by -max-body-bytes, but 1,024 connections each sending a
// 1.5 MiB body slowly (within the body deadline) would hold 1.5 GiB; with a
// budget, a request whose body does not fit is answered 503 before it is
// read. Taken at the size a request declares (Content-Length), or the body
// limit when it does not say (chunked), and given back once it is answered.
class BodyBudget {
 public:
  explicit BodyBudget(uint64_t limit_bytes) : limit_bytes_(limit_bytes) {}

  // False (nothing taken) when bytes do not fit in what is left.
  bool try_take(uint64_t bytes);
  void give_back(uint64_t bytes);
  uint64_t in_use_bytes() const;
  uint64_t limit_bytes() const { return limit_bytes_; }

 private:
  const uint64_t limit_bytes_;
  mutable std::mutex mu_;
  uint64_t in_use_bytes_ = 0;
};

}  // namespace ckv::http
