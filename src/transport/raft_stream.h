// One raft connection as a byte stream, plain TCP or TLS over TCP behind one async interface, and the one loop that reads frames off it.
//
// Every raft connection (a peer's outbound stream, an accepted stream, a
// probe) is a RaftStream: without peer TLS the bytes go straight to the TCP
// socket; with it (PeerTlsContext) an OpenSSL session sits on the same
// socket, TLS 1.2 or later, and both ends present a certificate and verify
// the other's against -peer-trusted-ca-file (docs/security.md, "Peer TLS").
// Who the certificate names is checked by the caller after the hello
// (tls/peer_cert.h), since only the hello says which member it claims to be.
//
// Threads: a stream belongs to the I/O thread that runs its executor, like
// the socket under it. One read and one write may be in flight at once (a
// raft stream reads replies while it writes messages). close() closes the
// TCP socket at once, without a TLS close_notify: frames are self-delimiting
// and checksummed, so a truncated stream is merely a closed one, and waiting
// for a hostile peer's close_notify would be one more way to hold a slot.
//
// Includes Asio and OpenSSL: for tcp_transport.cc and its tests only.
#pragma once

// <utility> before Asio (DESIGN.md, platform notes).
#include <utility>

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>

#include "common/status.h"
#include "tls/tls_files.h"
#include "transport/stream_codec.h"

namespace ckv::transport {

// The OpenSSL context every raft stream of one transport shares: our
// certificate and key, the trusted CA, TLS 1.2+, peer certificates required
// and verified in both roles. Immutable once made; any thread.
class PeerTlsContext {
 public:
  // kCorrupt when OpenSSL refuses the material (load_peer_tls has checked it).
  static Result<std::shared_ptr<PeerTlsContext>> create(const tls::PeerTlsMaterial& m);
  boost::asio::ssl::context& native() { return ctx_; }
  const std::string& allowed_cn() const { return allowed_cn_; }

 private:
  PeerTlsContext();
  boost::asio::ssl::context ctx_;
  std::string allowed_cn_;
};

class RaftStream {
 public:
  enum class Role { kDialer, kAcceptor };

  // tls null: plain TCP.
  RaftStream(boost::asio::io_context& io, std::shared_ptr<PeerTlsContext> tls);
  RaftStream(const RaftStream&) = delete;
  RaftStream& operator=(const RaftStream&) = delete;

  // The TCP layer: connect, accept into, options, addresses.
  boost::asio::ip::tcp::socket& socket() { return socket_; }
  bool is_tls() const { return tls_.has_value(); }
  bool is_open() const { return socket_.is_open(); }

  // The TLS handshake in the given role (nothing for plain TCP); the error
  // says why it failed (an unverified certificate, not TLS at all...).
  boost::asio::awaitable<boost::system::error_code> handshake(Role role);
  // The peer's certificate once the handshake verified it; null for plain
  // TCP. Owned by the stream.
  X509* peer_certificate();

  boost::asio::awaitable<size_t> read_some(boost::asio::mutable_buffer b, boost::system::error_code& ec);
  // Writes all of buffers (by value: the list lives in the coroutine frame;
  // gathered into one write for plain TCP; copied
  // into one buffer for TLS, whose records take one buffer at a time).
  boost::asio::awaitable<void> write(std::vector<boost::asio::const_buffer> buffers,
                                     boost::system::error_code& ec);
  void close();

 private:
  boost::asio::ip::tcp::socket socket_;
  std::shared_ptr<PeerTlsContext> tls_context_;  // kept alive as long as a session made from it
  std::optional<boost::asio::ssl::stream<boost::asio::ip::tcp::socket&>> tls_;
  std::string gather_;  // TLS writes: the batch in one piece
};

// What a read loop does around each read of read_frame: before_read(want)
// may refuse (false: stop, e.g. over an inbound budget) and may arm a timer;
// after_read(got) runs after every read, got == 0 included. Both optional.
struct ReadHooks {
  std::function<bool(size_t want)> before_read;
  std::function<void(size_t got)> after_read;
};

// The next frame's payload off stream, reading as needed: the one read loop
// of the transport (a dialer's wait for the answer hello, an acceptor's
// hello and messages, a dialer's replies). The payload is valid until the
// next call on reader. Errors: the reader's (kCorrupt: CRC, size limit);
// kUnavailable "closed" when the peer closed the stream, else the socket's
// error; kAborted-like kUnavailable "refused by the read hook".
boost::asio::awaitable<Result<std::string_view>> read_frame(RaftStream& stream, FrameReader& reader,
                                                            const ReadHooks* hooks = nullptr);

// The message read_frame gives for a stream the peer closed.
inline constexpr char kStreamClosedMessage[] = "the peer closed the stream";
inline constexpr char kReadRefusedMessage[] = "refused by the read hook";

}  // namespace ckv::transport
