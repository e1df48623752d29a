// The HTTP/2 gRPC server: accept, TLS, nghttp2 sessions, gRPC framing (see h2_server.h).
#include "grpcfront/h2_server.h"

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <type_traits>
#include <utility>  // before Asio: Boost 1.74's asio/awaitable.hpp uses std::exchange without including it

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <nghttp2/nghttp2.h>
#include <spdlog/spdlog.h>

#include "common/thread_name.h"
#include "http/tls_context.h"

namespace ckv::grpcfront {

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Strand = asio::strand<asio::io_context::executor_type>;
constexpr auto kUseAwaitable = asio::use_awaitable;
// Connections refused for the limit are logged at most this often.
constexpr int64_t kRefusalLogIntervalMs = 1'000;

// The "h2" ALPN protocol; a TLS client that offers ALPN without it is refused
// (it would speak HTTP/1.1 to an HTTP/2 server).
int select_h2(SSL* /*ssl*/, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
              unsigned int inlen, void* /*arg*/) {
  unsigned char* selected = nullptr;
  if (nghttp2_select_next_protocol(&selected, outlen, in, inlen) != 1) return SSL_TLSEXT_ERR_ALERT_FATAL;
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

nghttp2_nv header(std::string_view name, std::string_view value) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
                    NGHTTP2_NV_FLAG_NONE};
}

bool is_grpc_reserved(std::string_view name) {
  return name == "content-type" || name == "te" || name == "grpc-timeout" || name == "grpc-encoding" ||
         name == "grpc-accept-encoding" || name == "user-agent";
}

}  // namespace

const std::string* CallHead::find(std::string_view name) const {
  for (const auto& [k, v] : metadata) {
    if (k == name) return &v;
  }
  return nullptr;
}

// One connection's HTTP/2 session; every member is touched on its strand only.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  struct Stream {
    int32_t id = 0;
    CallHead head;
    std::string http_method;
    std::string content_type;
    size_t header_bytes = 0;
    std::optional<MessageReader> reader;
    size_t partial_counted = 0;  // reader's bytes counted in the connection's partial_bytes_
    std::unique_ptr<CallHandler> handler;
    bool started = false;   // the handler exists
    bool answered = false;  // finish() came: no cancel at close
    // Outbound: response headers submitted, bytes waiting for nghttp2, the trailers.
    bool response_submitted = false;
    std::string out;
    size_t out_at = 0;
    bool deferred = false;
    std::optional<std::pair<GrpcCode, std::string>> trailers;
    std::string trailer_status, trailer_message;  // alive while nghttp2 sends them
  };

  Connection(asio::io_context& io, H2Server::Impl& server, uint64_t id, std::string peer)
      : strand_(asio::make_strand(io)), server_(server), id_(id), peer_(std::move(peer)) {}
  ~Connection() {
    if (session_ != nullptr) nghttp2_session_del(session_);
  }

  Strand& strand() { return strand_; }
  uint64_t id() const { return id_; }

  // keep_alive: this connection; a coroutine's parameters live in its frame
  // from the call on, so the connection outlives the coroutine however soon
  // the caller lets go of it.
  template <typename Socket>
  asio::awaitable<void> serve(std::shared_ptr<Connection> keep_alive, Socket socket, std::string client_cn);
  // Closes the socket under the TLS handshake, before serve() takes it over (stop() uses it).
  void set_closer(std::function<void()> close) { close_socket_ = std::move(close); }

  // From a CallWriter, on the strand.
  void queue(int32_t stream_id, std::optional<std::string> body, std::optional<std::pair<GrpcCode, std::string>> end);
  // From stop(), on the strand: GOAWAY, cancel every call, close.
  void shut_down();

 private:
  friend class H2Server::Impl;
  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                       const uint8_t* value, size_t valuelen, uint8_t flags, void* user);
  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int on_data_chunk(nghttp2_session*, uint8_t flags, int32_t stream_id, const uint8_t* data,
                           size_t len, void* user);
  static int on_stream_close(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* user);
  static ssize_t read_data(nghttp2_session*, int32_t stream_id, uint8_t* buf, size_t length,
                           uint32_t* data_flags, nghttp2_data_source* source, void* user);

  bool init_session();
  void start_call(Stream& s);
  void fail_call(Stream& s, GrpcCode code, const std::string& message);
  void submit(Stream& s);
  void respond_http(Stream& s, const char* status);
  void cancel_all();
  void kick();
  bool gather();
  void count_partial(Stream& s, size_t now);
  template <typename Socket>
  asio::awaitable<void> write_loop(std::shared_ptr<Connection> keep_alive, Socket& socket);

  Strand strand_;
  H2Server::Impl& server_;
  uint64_t id_;
  std::string peer_;
  std::string client_cn_;
  nghttp2_session* session_ = nullptr;
  std::map<int32_t, std::unique_ptr<Stream>> streams_;
  size_t partial_bytes_ = 0;  // incomplete request messages held, all streams
  bool writing_ = false;     // a write_loop owns out_
  std::string out_;          // bytes nghttp2 gave us, not yet on the socket
  // Inside nghttp2 (mem_recv, mem_send) or a drained handler: a kick then
  // only notes that there is more to send (nghttp2 forbids mem_send from
  // its own callbacks), and whoever is gathering looks again.
  bool in_session_ = false;
  bool kick_deferred_ = false;
  // Plain TCP: a non-blocking write on the strand, so that an answer that
  // fits in the socket's buffer (nearly all) leaves without a hop to
  // another thread; what does not fit goes to write_loop. Null under TLS.
  std::function<size_t(const std::string&, boost::system::error_code&)> write_now_;
  bool closing_ = false;
  bool preface_seen_ = false;
  std::vector<CallHandler*> drained_;  // handlers to tell, after a write
  std::function<void()> wake_writer_;  // set by serve(): starts a write
  std::function<void()> close_socket_;
};

class H2Server::Impl {
 public:
  Impl(H2ServerOptions options, Dispatch dispatch) : options_(std::move(options)), dispatch_(std::move(dispatch)) {}

  Status start();
  void stop();
  uint16_t port() const { return port_; }

  const H2ServerOptions& options() const { return options_; }
  std::unique_ptr<CallHandler> dispatch(CallHead head, std::shared_ptr<CallWriter> writer) {
    return dispatch_(std::move(head), std::move(writer));
  }
  void forget(uint64_t id) {
    std::lock_guard l(mu_);
    connections_.erase(id);
  }

 private:
  asio::awaitable<void> accept_loop();
  void refuse_logged(const std::string& peer);

  H2ServerOptions options_;
  Dispatch dispatch_;
  asio::io_context io_;
  std::optional<asio::ssl::context> tls_;
  std::optional<tcp::acceptor> acceptor_;
  std::vector<std::thread> threads_;
  uint16_t port_ = 0;
  std::mutex mu_;
  std::map<uint64_t, std::weak_ptr<Connection>> connections_;
  uint64_t next_id_ = 1;
  bool stopped_ = false;
  std::atomic<int64_t> refused_{0};
  std::atomic<int64_t> last_refusal_log_ms_{0};
};

namespace {

// A CallWriter: posts to its connection's strand; a call whose connection is gone drops it.
class StrandWriter final : public CallWriter {
 public:
  StrandWriter(std::weak_ptr<Connection> conn, int32_t stream_id) : conn_(std::move(conn)), stream_id_(stream_id) {}
  void send_message(std::string body) override { post(std::move(body), std::nullopt); }
  void finish(GrpcCode code, std::string message) override {
    post(std::nullopt, std::make_pair(code, std::move(message)));
  }
  void reply(std::string body) override { post(std::move(body), std::make_pair(GrpcCode::kOk, std::string())); }
  bool run(std::function<void()>& task) override {
    std::shared_ptr<Connection> conn = conn_.lock();
    if (!conn) return false;
    asio::post(conn->strand(), [conn, task = std::move(task)] { task(); });
    return true;
  }

 private:
  void post(std::optional<std::string> body, std::optional<std::pair<GrpcCode, std::string>> end) {
    std::shared_ptr<Connection> conn = conn_.lock();
    if (!conn) return;
    if (conn->strand().running_in_this_thread()) return conn->queue(stream_id_, std::move(body), std::move(end));
    asio::post(conn->strand(), [conn, id = stream_id_, body = std::move(body), end = std::move(end)]() mutable {
      conn->queue(id, std::move(body), std::move(end));
    });
  }
  std::weak_ptr<Connection> conn_;
  int32_t stream_id_;
};

}  // namespace

bool Connection::init_session() {
  nghttp2_session_callbacks* cbs = nullptr;
  if (nghttp2_session_callbacks_new(&cbs) != 0) return false;
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
  nghttp2_option* opt = nullptr;
  if (nghttp2_option_new(&opt) != 0) {
    nghttp2_session_callbacks_del(cbs);
    return false;
  }
  // nghttp2's HTTP checks refuse what gRPC clients send and grpc++ takes:
  // etcdctl's --cluster calls carry ":authority: http://host:port". We
  // check what we use ourselves (on_header, start_call).
  nghttp2_option_set_no_http_messaging(opt, 1);
  const int rv = nghttp2_session_server_new2(&session_, cbs, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  if (rv != 0) return false;
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, kMaxStreamsPerConnection},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(kStreamWindowBytes)},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, kMaxHeaderListBytes},
  };
  if (nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings)) != 0) return false;
  // The connection's window: enough for several streams' large messages at once.
  return nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                               static_cast<int32_t>(kMaxPartialBytesPerConnection)) == 0;
}

int Connection::on_begin_headers(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<Connection*>(user);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  auto s = std::make_unique<Stream>();
  s->id = frame->hd.stream_id;
  s->head.peer = self->peer_;
  s->head.client_cn = self->client_cn_;
  nghttp2_session_set_stream_user_data(session, s->id, s.get());
  self->streams_[s->id] = std::move(s);
  return 0;
}

int Connection::on_header(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name,
                          size_t namelen, const uint8_t* value, size_t valuelen, uint8_t /*flags*/,
                          void* /*user*/) {
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  auto* s = static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, frame->hd.stream_id));
  // A trailer HEADERS from the client (gRPC clients send none) carries nothing we use.
  if (s == nullptr || s->started) return 0;
  s->header_bytes += namelen + valuelen + 32;  // HTTP/2's accounting (RFC 9113 §6.5.2)
  if (s->header_bytes > kMaxHeaderListBytes) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  // RFC 9113 §8.2.1: lower-case tokens, no CR, LF or NUL in values (HPACK
  // carries any bytes; without nghttp2's HTTP checks nobody else looks).
  const bool pseudo = namelen > 0 && name[0] == ':';
  if ((!pseudo && nghttp2_check_header_name(name, namelen) == 0) || nghttp2_check_header_value(value, valuelen) == 0) {
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }
  const std::string_view n(reinterpret_cast<const char*>(name), namelen);
  const std::string_view v(reinterpret_cast<const char*>(value), valuelen);
  if (n == ":path") {
    s->head.method.assign(v);
  } else if (n == ":method") {
    s->http_method.assign(v);
  } else if (n == "content-type") {
    s->content_type.assign(v);
  } else if (n == "grpc-timeout") {
    s->head.timeout_ms = parse_timeout_ms(v);
  } else if (n == "grpc-encoding") {
    s->head.encoding.assign(v);
  } else if (!n.starts_with(':') && !is_grpc_reserved(n)) {
    s->head.metadata.emplace_back(n, v);
  }
  return 0;
}

int Connection::on_frame_recv(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<Connection*>(user);
  self->preface_seen_ = true;
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
  auto* s = static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, frame->hd.stream_id));
  if (s == nullptr) return 0;
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) self->start_call(*s);
  if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0 && s->handler && !s->answered) {
    if (s->reader && s->reader->buffered_bytes() != 0) {
      self->fail_call(*s, GrpcCode::kInternal, "grpc: the stream ended inside a message");
    } else {
      s->handler->on_half_close();
    }
  }
  return 0;
}

void Connection::start_call(Stream& s) {
  s.started = true;
  if (s.http_method != "POST") return respond_http(s, "405");
  // "application/grpc", "application/grpc+proto"; grpc-web and anything else is not ours.
  if (s.content_type != "application/grpc" && !s.content_type.starts_with("application/grpc+") &&
      !s.content_type.starts_with("application/grpc;")) {
    return respond_http(s, "415");
  }
  if (s.head.method.empty() || s.head.method.front() != '/') return respond_http(s, "400");
  if (!supported_encoding(s.head.encoding)) {
    // gRPC's rule: UNIMPLEMENTED, naming the encodings we read.
    s.answered = true;
    s.trailers = std::make_pair(GrpcCode::kUnimplemented,
                                "grpc: Decompressor is not installed for grpc-encoding \"" + s.head.encoding + "\"");
    return submit(s);
  }
  s.reader.emplace(server_.options().max_message_bytes, s.head.encoding);
  s.handler = server_.dispatch(s.head, std::make_shared<StrandWriter>(weak_from_this(), s.id));
}

int Connection::on_data_chunk(nghttp2_session* session, uint8_t /*flags*/, int32_t stream_id, const uint8_t* data,
                              size_t len, void* user) {
  auto* self = static_cast<Connection*>(user);
  auto* s = static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, stream_id));
  if (s == nullptr || !s->handler || s->answered) return 0;
  std::vector<std::string> messages;
  std::optional<WireError> err =
      s->reader->feed(std::string_view(reinterpret_cast<const char*>(data), len), messages);
  if (err) {
    self->count_partial(*s, 0);
    self->fail_call(*s, err->code, err->message);
    return 0;
  }
  self->count_partial(*s, s->reader->buffered_bytes());
  if (self->partial_bytes_ > kMaxPartialBytesPerConnection) {
    spdlog::warn("grpc: failing a call from {}: over {} bytes of unfinished messages on its connection",
                 self->peer_, kMaxPartialBytesPerConnection);
    self->count_partial(*s, 0);
    self->fail_call(*s, GrpcCode::kResourceExhausted, "consensuskv: too many unfinished messages on this connection");
    return 0;
  }
  for (std::string& m : messages) {
    if (s->answered) break;
    s->handler->on_message(std::move(m));
  }
  return 0;
}

int Connection::on_stream_close(nghttp2_session* /*session*/, int32_t stream_id, uint32_t /*error_code*/,
                                void* user) {
  auto* self = static_cast<Connection*>(user);
  auto it = self->streams_.find(stream_id);
  if (it == self->streams_.end()) return 0;
  // Out of the map first: a handler that answers from on_cancel (a relayed
  // call's status, written at once on this strand) must find no stream.
  std::unique_ptr<Stream> s = std::move(it->second);
  self->streams_.erase(it);
  self->count_partial(*s, 0);
  std::erase(self->drained_, s->handler.get());
  if (s->handler && !s->answered) s->handler->on_cancel();
  return 0;
}

// A framing failure: the status as trailers, and nothing more from the client is read into the call.
void Connection::fail_call(Stream& s, GrpcCode code, const std::string& message) {
  if (s.answered) return;
  s.answered = true;
  // Trailers before on_cancel: an answer the handler gives from it is then dropped (queue).
  s.trailers = std::make_pair(code, message);
  if (s.handler) s.handler->on_cancel();
  submit(s);
}

void Connection::respond_http(Stream& s, const char* status) {
  s.answered = true;
  const nghttp2_nv nva[] = {header(":status", status)};
  nghttp2_submit_response(session_, s.id, nva, std::size(nva), nullptr);
}

void Connection::queue(int32_t stream_id, std::optional<std::string> body,
                       std::optional<std::pair<GrpcCode, std::string>> end) {
  auto it = streams_.find(stream_id);
  if (it == streams_.end() || closing_) return;
  Stream& s = *it->second;
  if (s.trailers) return;  // already ended (a framing failure, or a second finish)
  if (body) {
    s.out.append(frame_message(*body));
    if (s.handler) s.handler->queued_bytes = s.out.size() - s.out_at;
  }
  if (end) {
    s.answered = true;
    s.trailers = std::move(end);
  }
  submit(s);
  kick();
}

// Hands the stream's state to nghttp2: the response headers once, then data as it comes.
void Connection::submit(Stream& s) {
  if (!s.response_submitted) {
    s.response_submitted = true;
    if (s.out.empty() && s.trailers) {
      // Trailers-only: one HEADERS frame with the status (an error before any message).
      s.trailer_status = std::to_string(static_cast<int>(s.trailers->first));
      s.trailer_message = percent_encode_message(s.trailers->second);
      const nghttp2_nv nva[] = {header(":status", "200"), header("content-type", "application/grpc"),
                                header("grpc-status", s.trailer_status),
                                header("grpc-message", s.trailer_message)};
      nghttp2_submit_response(session_, s.id, nva, s.trailer_message.empty() ? 3 : 4, nullptr);
      return;
    }
    const nghttp2_nv nva[] = {header(":status", "200"), header("content-type", "application/grpc")};
    nghttp2_data_provider provider{};
    provider.source.ptr = &s;
    provider.read_callback = read_data;
    nghttp2_submit_response(session_, s.id, nva, std::size(nva), &provider);
    return;
  }
  if (s.deferred) {
    s.deferred = false;
    nghttp2_session_resume_data(session_, s.id);
  }
}

ssize_t Connection::read_data(nghttp2_session* session, int32_t stream_id, uint8_t* buf, size_t length,
                              uint32_t* data_flags, nghttp2_data_source* source, void* user) {
  auto* self = static_cast<Connection*>(user);
  auto* s = static_cast<Stream*>(source->ptr);
  const size_t n = std::min(length, s->out.size() - s->out_at);
  std::copy_n(s->out.data() + s->out_at, n, buf);
  s->out_at += n;
  if (s->out_at == s->out.size()) {
    s->out.clear();
    s->out_at = 0;
    if (s->handler) {
      s->handler->queued_bytes = 0;
      if (!s->answered) self->drained_.push_back(s->handler.get());
    }
    if (s->trailers) {
      *data_flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
      s->trailer_status = std::to_string(static_cast<int>(s->trailers->first));
      s->trailer_message = percent_encode_message(s->trailers->second);
      const nghttp2_nv nva[] = {header("grpc-status", s->trailer_status),
                                header("grpc-message", s->trailer_message)};
      nghttp2_submit_trailer(session, stream_id, nva, s->trailer_message.empty() ? 1 : 2);
      return static_cast<ssize_t>(n);
    }
    if (n == 0) {
      s->deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    }
  } else if (s->handler) {
    s->handler->queued_bytes = s->out.size() - s->out_at;
  }
  return static_cast<ssize_t>(n);
}

void Connection::count_partial(Stream& s, size_t now) {
  partial_bytes_ = partial_bytes_ - s.partial_counted + now;
  s.partial_counted = now;
}

void Connection::kick() {
  if (in_session_) {
    kick_deferred_ = true;
    return;
  }
  if (writing_ || !wake_writer_) return;
  if (write_now_) {
    for (;;) {
      kick_deferred_ = false;
      if (!gather()) return;
      if (out_.empty()) {
        if (kick_deferred_) continue;
        if (nghttp2_session_want_read(session_) == 0) close_socket_();
        return;
      }
      boost::system::error_code ec;
      const size_t n = write_now_(out_, ec);
      if (ec && ec != asio::error::would_block && ec != asio::error::try_again) {
        out_.clear();
        close_socket_();
        return;
      }
      out_.erase(0, n);
      if (!out_.empty()) break;  // the socket's buffer is full: write_loop waits for it
    }
  }
  wake_writer_();
}

// Appends what nghttp2 has to send to out_ (up to kWriteChunkBytes), then
// tells the handlers whose queues drained. false: nghttp2 failed, the
// connection is closed.
bool Connection::gather() {
  in_session_ = true;
  while (out_.size() < kWriteChunkBytes) {
    const uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) {
      in_session_ = false;
      spdlog::debug("grpc: closing the connection from {}: {}", peer_, nghttp2_strerror(static_cast<int>(n)));
      out_.clear();
      close_socket_();
      return false;
    }
    if (n == 0) break;
    out_.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
  }
  // Handlers waiting for their queue to drain may queue more now; a kick
  // they cause is deferred (in_session_) and the caller gathers again.
  std::vector<CallHandler*> drained = std::move(drained_);
  drained_.clear();
  for (CallHandler* h : drained) h->on_drained();
  in_session_ = false;
  return true;
}

void Connection::cancel_all() {
  for (auto& [id, s] : streams_) {
    if (s->handler && !s->answered) {
      s->answered = true;
      s->handler->on_cancel();
    }
  }
  drained_.clear();
}

void Connection::shut_down() {
  if (closing_) return;
  closing_ = true;  // first: answers given from on_cancel find the connection closing (queue)
  nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
  cancel_all();
  kick();
}

template <typename Socket>
asio::awaitable<void> Connection::write_loop(std::shared_ptr<Connection> /*keep_alive*/, Socket& socket) {
  for (;;) {
    kick_deferred_ = false;
    if (out_.empty() && !gather()) {
      writing_ = false;
      co_return;
    }
    if (out_.empty()) {
      if (kick_deferred_) continue;
      writing_ = false;
      if (nghttp2_session_want_read(session_) == 0) close_socket_();
      co_return;
    }
    boost::system::error_code ec;
    co_await asio::async_write(socket, asio::buffer(out_), asio::redirect_error(kUseAwaitable, ec));
    out_.clear();
    if (ec) {
      close_socket_();
      writing_ = false;
      co_return;
    }
  }
}

template <typename Socket>
asio::awaitable<void> Connection::serve(std::shared_ptr<Connection> /*keep_alive*/, Socket socket,
                                        std::string client_cn) {
  client_cn_ = client_cn;  // a copy: a coroutine's parameter, once moved from, confuses the checks
  auto& lowest = socket.lowest_layer();
  close_socket_ = [&lowest] {
    boost::system::error_code ec;
    lowest.shutdown(tcp::socket::shutdown_both, ec);
    lowest.close(ec);
  };
  if (!init_session()) {
    spdlog::warn("grpc: cannot set up an HTTP/2 session for {}", peer_);
    co_return;
  }
  wake_writer_ = [this, &socket] {
    writing_ = true;
    asio::co_spawn(strand_, write_loop(shared_from_this(), socket), asio::detached);
  };
  if constexpr (std::is_same_v<Socket, tcp::socket>) {
    boost::system::error_code ec;
    socket.non_blocking(true, ec);  // our own writes only: Asio's async operations are unaffected
    if (!ec) {
      write_now_ = [&socket](const std::string& bytes, boost::system::error_code& wec) {
        return socket.write_some(asio::buffer(bytes), wec);
      };
    }
  }
  // HTTP/2's preface must come within the handshake deadline (the TLS
  // handshake, if any, already spent part of it: serve() starts after it).
  asio::steady_timer preface_timer(strand_, std::chrono::milliseconds(server_.options().handshake_timeout_ms));
  preface_timer.async_wait([this, alive = weak_from_this()](const boost::system::error_code& ec) {
    if (ec || alive.expired() || preface_seen_) return;
    spdlog::debug("grpc: closing a connection from {}: no HTTP/2 preface within {} ms", peer_,
                  server_.options().handshake_timeout_ms);
    close_socket_();
  });
  kick();  // our SETTINGS
  std::vector<uint8_t> buf(kReadChunkBytes);
  for (;;) {
    boost::system::error_code ec;
    const size_t n = co_await socket.async_read_some(asio::buffer(buf), asio::redirect_error(kUseAwaitable, ec));
    if (ec) break;
    in_session_ = true;
    const ssize_t rv = nghttp2_session_mem_recv(session_, buf.data(), n);
    in_session_ = false;
    if (rv < 0) {
      spdlog::info("grpc: closing the connection from {}: {}", peer_, nghttp2_strerror(static_cast<int>(rv)));
      // nghttp2 queued a GOAWAY for protocol errors; give it a chance to leave.
      kick();
      break;
    }
    kick();
    if (closing_ && !writing_) break;
  }
  preface_timer.cancel();
  closing_ = true;
  cancel_all();
  streams_.clear();
  // Let a GOAWAY in flight finish; the write loop closes the socket when nghttp2 wants nothing more.
  while (writing_) {
    asio::steady_timer t(strand_, std::chrono::milliseconds(10));
    boost::system::error_code ignored;
    co_await t.async_wait(asio::redirect_error(kUseAwaitable, ignored));
  }
  close_socket_();
  wake_writer_ = nullptr;
  write_now_ = nullptr;
  server_.forget(id_);
}

Status H2Server::Impl::start() {
  if (options_.tls) {
    auto ctx = http::make_tls_context(*options_.tls, asio::ssl::context::tls_server);
    if (!ctx.is_ok()) return ctx.status();
    tls_.emplace(std::move(ctx.value()));
    SSL_CTX_set_alpn_select_cb(tls_->native_handle(), select_h2, nullptr);
  }
  // host:port or [v6]:port; port 0 (tests) picks a free one.
  const std::string& addr = options_.listen_address;
  const size_t colon = addr.rfind(':');
  if (colon == std::string::npos) return Status(StatusCode::kInvalid, "gRPC address " + addr + " is not host:port");
  std::string host = addr.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  boost::system::error_code ec;
  tcp::resolver resolver(io_);
  auto endpoints = resolver.resolve(host, addr.substr(colon + 1), resolver.numeric_service, ec);
  if (ec || endpoints.empty()) {
    return Status(StatusCode::kIo, "cannot resolve gRPC address " + options_.listen_address + ": " + ec.message());
  }
  const tcp::endpoint ep = endpoints.begin()->endpoint();
  acceptor_.emplace(io_);
  acceptor_->open(ep.protocol(), ec);
  if (!ec) acceptor_->set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_->bind(ep, ec);
  if (!ec) acceptor_->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Status(StatusCode::kIo, "cannot serve gRPC on " + options_.listen_address + ": " + ec.message());
  }
  port_ = acceptor_->local_endpoint().port();
  asio::co_spawn(io_, accept_loop(), asio::detached);
  for (int i = 0; i < std::max(1, options_.threads); ++i) {
    threads_.emplace_back([this] {
      name_this_thread("ckv-grpc-io");
      io_.run();
    });
  }
  return Status::ok();
}

void H2Server::Impl::refuse_logged(const std::string& peer) {
  const int64_t n = refused_.fetch_add(1) + 1;
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
  int64_t last = last_refusal_log_ms_.load();
  if (now - last >= kRefusalLogIntervalMs && last_refusal_log_ms_.compare_exchange_strong(last, now)) {
    spdlog::warn("grpc: refusing a connection from {}: {} connections open (the limit; {} refused since start)",
                 peer, options_.max_connections, n);
  }
}

asio::awaitable<void> H2Server::Impl::accept_loop() {
  for (;;) {
    boost::system::error_code ec;
    tcp::socket socket = co_await acceptor_->async_accept(asio::redirect_error(kUseAwaitable, ec));
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor_->is_open()) co_return;
      // EMFILE and the like: wait a moment rather than spin.
      asio::steady_timer t(io_, std::chrono::milliseconds(50));
      co_await t.async_wait(asio::redirect_error(kUseAwaitable, ec));
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    boost::system::error_code pec;
    const auto remote = socket.remote_endpoint(pec);
    const std::string peer = pec ? "?" : remote.address().to_string() + ":" + std::to_string(remote.port());
    std::shared_ptr<Connection> conn;
    {
      std::lock_guard l(mu_);
      if (stopped_) co_return;
      if (connections_.size() >= static_cast<size_t>(options_.max_connections)) {
        refuse_logged(peer);
        continue;  // the socket closes here
      }
      conn = std::make_shared<Connection>(io_, *this, next_id_++, peer);
      connections_[conn->id()] = conn;
    }
    if (!tls_) {
      asio::co_spawn(conn->strand(), conn->serve(conn, std::move(socket), std::string()), asio::detached);
      continue;
    }
    asio::co_spawn(
        conn->strand(),
        [this, conn, socket = std::move(socket), peer]() mutable -> asio::awaitable<void> {
          asio::ssl::stream<tcp::socket> stream(std::move(socket), *tls_);
          conn->set_closer([&stream] {
            boost::system::error_code ignored;
            stream.lowest_layer().close(ignored);
          });
          asio::steady_timer deadline(conn->strand(), std::chrono::milliseconds(options_.handshake_timeout_ms));
          deadline.async_wait([&stream](const boost::system::error_code& ec) {
            if (!ec) {
              boost::system::error_code ignored;
              stream.lowest_layer().close(ignored);
            }
          });
          boost::system::error_code ec;
          co_await stream.async_handshake(asio::ssl::stream_base::server, asio::redirect_error(kUseAwaitable, ec));
          deadline.cancel();
          if (ec) {
            spdlog::debug("grpc: TLS handshake with {} failed: {}", peer, ec.message());
            forget(conn->id());
            co_return;
          }
          std::string cn = options_.tls->verify_clients ? http::verified_client_cn(stream.native_handle()) : "";
          co_await conn->serve(conn, std::move(stream), std::move(cn));
        },
        asio::detached);
  }
}

void H2Server::Impl::stop() {
  std::vector<std::shared_ptr<Connection>> open;
  {
    std::lock_guard l(mu_);
    if (stopped_) return;
    stopped_ = true;
    for (auto& [id, weak] : connections_) {
      if (auto c = weak.lock()) open.push_back(std::move(c));
    }
  }
  asio::post(io_, [this] {
    boost::system::error_code ec;
    if (acceptor_) acceptor_->close(ec);
  });
  for (auto& c : open) {
    asio::post(c->strand(), [c] {
      c->shut_down();
      if (c->close_socket_) c->close_socket_();
    });
  }
  open.clear();
  // Connections end once their coroutines see the closed sockets; then run() returns.
  for (auto& t : threads_) t.join();
  threads_.clear();
}

Result<std::unique_ptr<H2Server>> H2Server::start(H2ServerOptions options, Dispatch dispatch) {
  auto impl = std::make_unique<Impl>(std::move(options), std::move(dispatch));
  if (Status s = impl->start(); !s.is_ok()) return s;
  return std::unique_ptr<H2Server>(new H2Server(std::move(impl)));
}

H2Server::H2Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
H2Server::~H2Server() { stop(); }
uint16_t H2Server::port() const { return impl_->port(); }
void H2Server::stop() { impl_->stop(); }

}  // namespace ckv::grpcfront
