// Transport over TCP: one outbound stream per peer with a bounded queue, inbound streams delivered to the node.
//
// Ownership and threads: the transport owns one I/O thread (started by
// start(), joined by stop()) that runs every socket. send(), set_peer() and
// remove_peer() may be called from any thread (the Raft thread in practice)
// and never block on the network: they only touch a queue under a mutex and
// wake the I/O thread. The handler passed to start() runs on the I/O thread
// and must only enqueue.
//
// Per peer: one outbound connection carrying messages in the order they were
// sent. A queue bounded by messages and bytes sits in front of it; when it is
// full, or while the peer is unreachable (between a failed connect and the
// next attempt), messages to that peer are dropped and counted — Raft's
// heartbeats, probes and retries recover (transport.h). Connect failures back
// off exponentially from backoff_initial_ms to backoff_max_ms. Each write
// gathers many queued frames into one system call.
//
// Peer TLS (options.peer_tls): each connection is a RaftStream
// (raft_stream.h), plain TCP or mutual TLS with the same interface. With
// TLS the dialer checks, right after the handshake, that the acceptor's
// certificate names the host of the address it dialled; the acceptor
// checks, once the hello says who the dialer claims to be, that its
// certificate names the host of that member's raft address (tls/peer_cert.h).
// A failed handshake counts like a missing hello: hello_timeout_ms runs from
// accept and covers the handshake, and a connection in its handshake holds
// one of the max_pending_hello_connections slots.
//
// Stream: the dialer sends a hello (stream_codec.h: who it is, whom it wants,
// its addresses and data-dir incarnation); the acceptor checks it and
// answers with its own, and only then does the dialer send messages. The
// dialer checks the answer too: a peer that is another node, or a member
// whose incarnation differs from the membership's (its data dir was wiped),
// gets nothing; nor does a peer whose answer names another cluster (both
// sides check: Transport::set_cluster_id). A receiver closes a stream whose hello is wrong, addressed
// to another node id, from a sender that is not a registered peer
// (transport.h, "Who is heard"), whose frame fails its CRC or size limit,
// whose message does not decode or claims another sender.
//
// Limits against hostile connections (anyone who reaches the raft port):
// a connection that sends no valid hello within hello_timeout_ms is closed;
// at most max_pending_hello_connections may be waiting for theirs (the
// oldest is closed for a new one); a sender has at most
// max_streams_per_sender streams (at the cap a new one replaces the one idle
// longest, if idle for idle_stream_evict_ms, else it is refused: a member's
// live stream carries heartbeats, so a spoofed hello never evicts it); an
// inbound stream buffers at most one frame (kMaxFrameBytes), and all
// inbound streams together max_inbound_buffer_bytes (over it, the stream
// holding the most is closed), and a stream that stops halfway through a
// frame for partial_frame_stall_ms is closed. Each refusal is counted (stats()) and logged
// with the remote address, at most once per 5 s and kind.
//
// Asio stays in tcp_transport.cc so that including this header is cheap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/status.h"
#include "raft/types.h"
#include "tls/tls_files.h"
#include "transport/transport.h"

namespace ckv::transport {

inline constexpr uint32_t kDefaultHelloTimeoutMs = 2000;
inline constexpr size_t kDefaultMaxInboundBufferBytes = size_t{128} << 20;  // two largest frames

struct TcpTransportOptions {
  // Per-peer outbound queue bounds; a message that does not fit is dropped.
  // One message is always admitted into an empty queue, so a frame up to
  // kMaxFrameBytes can be sent whatever max_queue_bytes is.
  size_t max_queue_messages = 4096;
  size_t max_queue_bytes = size_t{64} << 20;
  // Upper bound on the bytes gathered into one write, so that one huge batch
  // does not delay noticing a dead connection.
  size_t max_write_batch_bytes = size_t{4} << 20;
  // Reconnect backoff: first retry after backoff_initial_ms, doubling up to
  // backoff_max_ms; reset once a stream has stayed up for a second (a peer
  // that accepts and closes at once backs off like a refused connect).
  uint32_t backoff_initial_ms = 50;
  uint32_t backoff_max_ms = 2000;
  // A connect attempt that has not finished by then counts as failed (a
  // blackholed address would otherwise hold the peer for minutes).
  uint32_t connect_timeout_ms = 3000;
  // A stream whose sent data stays unacknowledged this long is dropped and
  // redialled (TCP_USER_TIMEOUT), so links recover promptly after a partition.
  uint32_t user_timeout_ms = 5000;
  // Inbound streams beyond this are closed at once (a limit on everything).
  size_t max_inbound_connections = 256;
  // An inbound connection must send a valid hello within this; the dialer
  // waits as long for the answer.
  uint32_t hello_timeout_ms = kDefaultHelloTimeoutMs;
  // Inbound connections that have not said hello yet (a separate, smaller
  // cap so idle sockets cannot use up max_inbound_connections).
  size_t max_pending_hello_connections = 32;
  // Streams one sender may hold to us (see the header comment).
  size_t max_streams_per_sender = 2;
  uint32_t idle_stream_evict_ms = 2000;
  // Bytes buffered by all inbound streams together (partial frames); a
  // single frame can be kMaxFrameBytes, so keep this well above it.
  size_t max_inbound_buffer_bytes = kDefaultMaxInboundBufferBytes;
  // An inbound stream that holds part of a frame and receives nothing for
  // this long is closed, so a stalled partial frame cannot pin memory.
  uint32_t partial_frame_stall_ms = 10000;
  // Peer TLS (tls/tls_files.h): every stream, dialled, accepted or probed,
  // is mutual TLS and the peer's certificate must name the member its hello
  // claims (tls/peer_cert.h). nullopt: plaintext.
  std::optional<tls::PeerTlsMaterial> peer_tls;
};

// Counters for tests and status pages; monotonic since construction.
struct TcpTransportStats {
  uint64_t messages_sent = 0;      // frames fully written to a socket
  uint64_t socket_writes = 0;      // write calls to peers' sockets that wrote something (one may carry many frames)
  uint64_t direct_writes = 0;      // those made by the sending thread itself (the peer's writer was parked)
  uint64_t messages_dropped = 0;   // queue full, peer unknown/unreachable, or lost with a stream
  uint64_t messages_received = 0;  // delivered to the handler
  uint64_t streams_rejected = 0;   // inbound streams closed for a bad hello, frame or message
  uint64_t connects = 0;           // outbound connections established
  uint64_t connect_failures = 0;   // connect attempts that failed or streams closed at once
  // Refusals of hostile or stale input (each also logged, rate-limited):
  uint64_t connections_refused = 0;   // over max_inbound_connections or the pending-hello cap
  uint64_t hello_timeouts = 0;        // no valid hello within hello_timeout_ms
  uint64_t senders_refused = 0;       // a hello from an id that is not a registered peer
  uint64_t incarnations_refused = 0;  // a member answering or dialling with another data dir
  uint64_t stream_cap_refused = 0;    // a sender over max_streams_per_sender live streams
  uint64_t buffer_budget_closes = 0;  // streams closed to keep within max_inbound_buffer_bytes
  uint64_t foreign_messages = 0;      // a message whose sender is not the stream's
  uint64_t tls_handshakes_failed = 0;  // peer TLS: a handshake that failed (no or an untrusted certificate, not TLS)
  uint64_t certificates_refused = 0;   // peer TLS: a verified certificate that does not name the member
  uint64_t cluster_ids_refused = 0;    // a hello or answer naming another cluster
  uint64_t probes_answered = 0;
  uint64_t inbound_buffered_bytes = 0;  // now, not monotonic
};

class TcpTransport final : public Transport {
 public:
  // listen_address is "host:port" or "[v6]:port"; port 0 picks a free port
  // (see listen_port()). Nothing happens on the network until listen()/start().
  TcpTransport(raft::NodeId local_id, std::string listen_address, TcpTransportOptions options = {});
  ~TcpTransport() override;  // calls stop()

  TcpTransport(const TcpTransport&) = delete;
  TcpTransport& operator=(const TcpTransport&) = delete;

  // Binds and listens. Call before start() to learn about a bad address or a
  // port in use (kInvalid / kIo), or peer TLS material OpenSSL refuses (kCorrupt); start() calls it otherwise, and then a
  // failure leaves the transport sending but not receiving, reported by
  // listen_status().
  Status listen();
  Status listen_status() const;
  // The bound port once listening (useful with port 0); 0 before.
  uint16_t listen_port() const;

  // Transport. start() once; stop() is idempotent and final (no restart:
  // construct a new transport), closes every socket and joins the I/O thread.
  // Until set_local_identity() the hello names the node by its id and
  // listen address, with no API address or incarnation.
  void set_local_identity(const PeerIdentity& self) override;
  void set_cluster_id(uint64_t cluster_id) override;
  void start(Handler handler) override;
  void stop() override;
  void set_peer(raft::NodeId id, const std::string& address,
                const std::string& incarnation) override;
  void remove_peer(raft::NodeId id) override;
  void set_accept_unknown_peers(bool on) override;
  void send(raft::Message m) override;
  void send_all(std::vector<raft::Message> msgs) override;
  void probe(const std::string& address, int timeout_ms, ProbeCallback cb) override;

  TcpTransportStats stats() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// Splits "host:port" or "[v6]:port" into its parts; kInvalid if malformed.
struct HostPort {
  std::string host;
  uint16_t port = 0;
};
Result<HostPort> parse_host_port(const std::string& address);

}  // namespace ckv::transport
