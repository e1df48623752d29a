// Which pool an incoming HTTP connection may take a slot in (outside clients, bounded per address, or the members' reserve), and the body-bytes budget (pure; thread-safe).
//
// Why a reserve: a follower forwards writes to the leader's API, the same
// port outside clients use. If the members' connections counted against the
// clients' limit, 1,024 slow clients (slowloris) would stop every forwarded
// write in the cluster. So on top of the clients' pool there are
// member_connections slots that only a connection from a member's host may
// take, and only while the clients' pool (or its address's share) is full.
// The server then insists that every request on such a connection is
// forwarded (kForwardedHeader) and closes it otherwise, so an outsider on a
// member's host cannot quietly use the reserve for ordinary requests.
//
// What the reserve does not stop (documented in docs/api.md): a process on
// a member's own host can open connections from that address and hold
// reserved slots until the header deadline closes them; on loopback every
// local process is on "a member's host". The source address of a TCP
// connection cannot be forged off-path (the handshake needs the server's
// answer), so remote outsiders cannot reach the reserve at all.
//
// Addresses are compared as text in their canonical form (see
// canonical_ip in server.cc: an IPv4-mapped IPv6 address as IPv4).
#pragma once

#include <cstdint>
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

class ConnectionAdmission {
 public:
  explicit ConnectionAdmission(AdmissionLimits limits) : limits_(limits) {}

  // Takes a slot for a connection from ip. from_member_host: ip is the host
  // of a member's raft or API address. Every admitted connection must be
  // released exactly once with the same ip and the returned pool.
  Admitted admit(const std::string& ip, bool from_member_host);
  void release(const std::string& ip, Admitted pool);

  int clients() const;
  int members() const;
  int clients_from(const std::string& ip) const;

 private:
  const AdmissionLimits limits_;
  mutable std::mutex mu_;
  int clients_ = 0;
  int members_ = 0;
  // Clients' slots per source address; an entry exists only while it is
  // non-zero, so the map is bounded by max_connections.
  std::unordered_map<std::string, int> per_ip_;
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
