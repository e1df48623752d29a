// A gRPC server of our own: HTTP/2 (libnghttp2) over Asio, plain or TLS, handing each call to a handler that the caller's dispatch picks by method.
//
// Why not grpc++'s server: every call there crosses grpc's own threads
// (the poller hand-off between "nexting" threads, then our answer back
// through them), 80-110 us of CPU per call more than our HTTP/1.1 API on
// the same path (bench/README.md, sessions 14-16). Here a call is read,
// dispatched and answered on the connection's io thread, as the HTTP API's
// requests are.
//
// What this layer does: connections (limit, handshake deadline, ALPN "h2"
// under TLS), HTTP/2 (nghttp2: framing, HPACK, flow control, PING, GOAWAY),
// gRPC framing (grpc_wire.h) and the call's head (method, metadata,
// deadline). What it leaves to the handler: what a method means. It checks
// nothing about messages beyond their framing and size.
//
// Threads: the server runs its own io threads; each connection is served
// on one strand. A handler's events arrive on that strand, one at a time;
// a CallWriter may be used from any thread. Lifecycle: stop() (or the
// destructor) closes the listener and every connection, cancelling every
// call still open (its handler gets on_cancel), and joins the threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "grpcfront/grpc_wire.h"
#include "tls/tls_files.h"

namespace ckv::grpcfront {

// Outside clients' connections served at once; a connection beyond it is
// closed at accept (and logged, at most once a second).
inline constexpr int kDefaultMaxConnections = 1024;
// SETTINGS_MAX_CONCURRENT_STREAMS: calls one connection may have open at
// once; clients queue calls beyond it (grpc-go and grpc++ do).
inline constexpr uint32_t kMaxStreamsPerConnection = 1024;
// SETTINGS_MAX_HEADER_LIST_SIZE: a call's request headers (metadata
// included; a JWT token is ~1 KiB). A call with more is reset.
inline constexpr uint32_t kMaxHeaderListBytes = 64 * 1024;
// Bytes of incomplete request messages one connection may hold (each is at
// most the message limit); past it the stream that grew it is reset.
inline constexpr size_t kMaxPartialBytesPerConnection = size_t{32} << 20;
// Per-stream flow-control window we grant: a message of the largest
// allowed size arrives without waiting for a WINDOW_UPDATE per 64 KiB.
inline constexpr int32_t kStreamWindowBytes = 4 << 20;
// Bytes read from a socket at a time.
inline constexpr size_t kReadChunkBytes = size_t{64} * 1024;
// Bytes gathered from nghttp2 into one socket write.
inline constexpr size_t kWriteChunkBytes = size_t{256} * 1024;

// A call's request head, as the client sent it.
struct CallHead {
  std::string method;  // ":path", e.g. "/etcdserverpb.KV/Put"
  // Every header except HTTP/2's pseudo-headers and gRPC's own (content-type,
  // te, grpc-timeout, grpc-encoding, grpc-accept-encoding, user-agent), lower-case.
  std::vector<std::pair<std::string, std::string>> metadata;
  std::optional<int64_t> timeout_ms;  // grpc-timeout
  std::string encoding;               // grpc-encoding ("" when none)
  std::string client_cn;              // the verified client certificate's CN (tls_context.h), or ""
  std::string peer;                   // "ip:port"

  // The first value of a metadata header; nullptr when absent.
  const std::string* find(std::string_view name) const;
};

// The answering side of one call. Thread-safe; each method posts to the
// connection's strand (or acts at once when called on it), and does nothing
// once the call has ended.
class CallWriter {
 public:
  virtual ~CallWriter() = default;
  // Queues one response message (body, unframed).
  virtual void send_message(std::string body) = 0;
  // Ends the call: trailers with the status (after the messages queued).
  virtual void finish(GrpcCode code, std::string message) = 0;
  // send_message(body) then finish(kOk), in one post: a unary call's answer.
  virtual void reply(std::string body) = 0;
  // Runs task on the call's connection thread (where a reply then costs no
  // post); false, task untouched, when the connection is gone.
  virtual bool run(std::function<void()>& task) = 0;
};

// The receiving side of one call; its events run on the connection's strand, in order.
class CallHandler {
 public:
  virtual ~CallHandler() = default;
  virtual void on_message(std::string body) = 0;
  // The client sent its last message.
  virtual void on_half_close() = 0;
  // The call ended before it was answered (the client reset it, the
  // connection closed, the server stopped); no event follows.
  virtual void on_cancel() = 0;
  // Every message queued so far has been handed to the socket.
  virtual void on_drained() {}
  // Bytes queued and not yet handed to the socket, for handlers that stream
  // answers and should wait (on_drained) rather than queue without end.
  size_t queued_bytes = 0;
};

// Picks the handler of a call from its head; never null.
using Dispatch = std::function<std::unique_ptr<CallHandler>(CallHead, std::shared_ptr<CallWriter>)>;

struct H2ServerOptions {
  std::string listen_address;  // host:port
  std::optional<tls::TlsMaterial> tls;
  int handshake_timeout_ms = 10'000;  // TLS and HTTP/2's preface, from accept
  int max_connections = kDefaultMaxConnections;
  size_t max_message_bytes = 4 << 20;  // a request message beyond it: RESOURCE_EXHAUSTED
  int threads = 2;
};

class H2Server {
 public:
  // Binds and starts serving; kIo when it cannot bind, kInvalid for bad TLS material.
  static Result<std::unique_ptr<H2Server>> start(H2ServerOptions options, Dispatch dispatch);
  ~H2Server();
  H2Server(const H2Server&) = delete;
  H2Server& operator=(const H2Server&) = delete;

  uint16_t port() const;
  // Idempotent.
  void stop();

  class Impl;

 private:
  explicit H2Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ckv::grpcfront
