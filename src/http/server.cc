// Beast HTTP server: connections, keep-alive, limits, forwarding to the leader, and registration/join calls.
#include "http/server.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>
#include <utility>  // before Asio: Boost 1.74's asio/awaitable.hpp uses std::exchange without including it
#include <variant>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include "auth/forwarded_caller.h"
#include "common/thread_name.h"
#include "etcd/auth_service.h"  // require_read, watch_cancel_reason
#include "etcd/backup_stream.h"
#include "http/address.h"
#include "http/admission.h"
#include "http/api.h"
#include "etcd/election_service.h"
#include "http/etcd_election_json.h"
#include "http/etcd_gateway.h"
#include "http/etcd_kv_json.h"
#include "http/etcd_lock_json.h"  // gateway_bad_body
#include "http/limits.h"
#include "http/tls_context.h"
#include "http/observability.h"
#include "metrics/instruments.h"
#include "watch/watch_hub.h"

namespace ckv::http {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;
using std::chrono::milliseconds;

constexpr auto kUseAwaitable = asio::use_awaitable;
// A forwarded write's answer echoes its key and value as JSON, where one
// byte can take six ("\u0001"); anything larger is not an answer of ours.
constexpr uint64_t kJsonEscapeFactor = 6;
constexpr uint64_t kUpstreamReplyOverheadBytes = uint64_t{64} << 10;
// Answers to /join (registration, -join) are a few hundred bytes.
constexpr uint64_t kMaxJoinReplyBytes = uint64_t{1} << 20;
// How long the removal check (node.h, set_peer_status_hook) waits for a member's /status.
constexpr int kPeerStatusTimeoutMs = 2000;
// Writing one response: the client must take it at least this fast.
constexpr milliseconds kWriteTimeout{30'000};
// Refusing a connection over a limit: the short answer must leave at once,
// and only so many refusals run at a time (beyond that the socket is just
// closed), so a flood of connections costs little more than the accepts.
constexpr milliseconds kRefusalWriteTimeout{1'000};
constexpr int kMaxConcurrentRefusals = 64;
// /v3/watch streams served at once (each holds its connection's slot, which
// counts against -http-max-connections, for as long as the client listens);
// more are answered 503.
constexpr int kMaxGatewayWatchStreams = 256;
// After refusing a body (413): how long and how much of the rest to read
// and drop so that the client sees the answer instead of a reset.
constexpr milliseconds kDrainTimeout{2'000};
constexpr size_t kMaxDrainBytes = size_t{16} << 20;
// Waiting for the next request on a kept-alive connection reads this much at
// most; the parser then takes the head from the buffer.
constexpr size_t kFirstReadBytes = size_t{4} << 10;
// The members' hosts (for the connection reserve, admission.h) follow the
// membership this often; host names are resolved again at most this often.
constexpr milliseconds kMemberHostsRefresh{1'000};
constexpr std::chrono::seconds kMemberHostsReresolve{30};
// Refused and evicted connections are logged on the first and then every this many.
constexpr uint64_t kRefusalLogEvery = 1000;
// Refused TLS handshakes (wrong CA, no client certificate, plain HTTP) are
// logged at most this often, with the count since start.
constexpr int64_t kTlsLogIntervalMs = 1'000;
// Ending a TLS connection: how long to wait for the client's close_notify.
constexpr milliseconds kTlsShutdownTimeout{1'000};
// The answer to plain HTTP sent to the TLS port (Go's net/http says the same).
constexpr const char* kPlainHttpToTls = "Client sent an HTTP request to an HTTPS server.";

// The text form admission compares: IPv4-mapped IPv6 (a dual-stack
// listener's view of an IPv4 client) as plain IPv4.
std::string canonical_ip(const asio::ip::address& a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped())
    return asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6()).to_string();
  return a.to_string();
}

// Awaits a Node-style callback API. The callback runs on another thread (the
// Raft thread), so the coroutine is resumed by posting to its own executor,
// never inline on the caller's thread.
template <typename T, typename Start>
asio::awaitable<T> from_callback(Start start) {
  return asio::async_initiate<const asio::use_awaitable_t<>&, void(T)>(
      [start = std::move(start)](auto handler) mutable {
        auto ex = asio::get_associated_executor(handler);
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        start([h, ex](T value) {
          asio::post(ex, [h, value = std::move(value)]() mutable { (*h)(std::move(value)); });
        });
      },
      kUseAwaitable);
}

struct UpstreamReply {
  unsigned status = 0;
  std::string body;
  std::string retry_after;
};

// A connection to a client or to another member's API: plain TCP, or TLS
// over TCP when the node serves TLS (-cert-file). Code that reads and writes
// HTTP is a template over the two (one request loop, one client exchange);
// deadlines, shutdown and eviction work on the TCP layer underneath.
using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;
using AnyStream = std::variant<PlainStream, TlsStream>;

beast::tcp_stream& tcp_layer(AnyStream& s) {
  return std::visit([](auto& x) -> beast::tcp_stream& { return beast::get_lowest_layer(x); }, s);
}

AnyStream make_stream(beast::tcp_stream tcp, asio::ssl::context* tls) {
  if (tls != nullptr) return AnyStream(std::in_place_type<TlsStream>, std::move(tcp), *tls);
  return AnyStream(std::in_place_type<PlainStream>, std::move(tcp));
}

// Idle keep-alive connections to other nodes' APIs, so that forwarded
// requests do not pay a TCP (and TLS) handshake each (a follower forwarding
// every write otherwise ran at about half the leader's rate). Shared by the
// io threads, hence the mutex; held only to move a stream in or out.
class UpstreamPool {
 public:
  std::unique_ptr<AnyStream> take(const std::string& address) {
    std::lock_guard lock(mu_);
    auto it = idle_.find(address);
    if (it == idle_.end()) return nullptr;
    auto& streams = it->second;
    std::unique_ptr<AnyStream> found;
    while (!streams.empty() && !found) {
      Idle c = std::move(streams.back());
      streams.pop_back();
      if (std::chrono::steady_clock::now() - c.since < kMaxIdle && still_open(*c.stream)) {
        found = std::move(c.stream);
      }
    }
    // No empty entries: addresses of past leaders do not pile up.
    if (streams.empty()) idle_.erase(it);
    return found;
  }

  void give_back(const std::string& address, std::unique_ptr<AnyStream> stream) {
    std::lock_guard lock(mu_);
    auto& streams = idle_[address];
    if (streams.size() >= kMaxIdlePerAddress) return;  // closed on destruction
    streams.push_back(Idle{std::move(stream), std::chrono::steady_clock::now()});
  }

 private:
  // Well under the server's keep-alive timeout (kDefaultIdleTimeoutMs), so the
  // other side does not close a connection just as we reuse it.
  static constexpr auto kMaxIdle = std::chrono::seconds(20);
  static constexpr size_t kMaxIdlePerAddress = 64;

  struct Idle {
    std::unique_ptr<AnyStream> stream;
    std::chrono::steady_clock::time_point since;
  };

  // A connection the other side closed (it restarted, or timed us out) reads
  // as EOF or an error at once (over TLS: a close_notify record, also data);
  // an idle healthy one would block.
  static bool still_open(AnyStream& stream) {
    char byte = 0;
    const ssize_t n =
        ::recv(tcp_layer(stream).socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

  std::mutex mu_;
  std::map<std::string, std::vector<Idle>> idle_;
};

// A new connection to another node's API (TCP, then TLS when tls is set,
// verifying that the certificate is valid for the address's host).
// kUnavailable: nothing was sent. The stream's deadline is already running.
asio::awaitable<Result<std::unique_ptr<AnyStream>>> connect_upstream(
    const std::string& address, const HostPort& hp, milliseconds timeout,
    std::optional<asio::ip::address> source, asio::ssl::context* tls) {
  auto ex = co_await asio::this_coro::executor;
  beast::error_code ec;
  beast::tcp_stream tcp(ex);
  tcp.expires_after(timeout);
  tcp::resolver resolver(ex);
  auto endpoints = co_await resolver.async_resolve(hp.host, std::to_string(hp.port),
                                                   asio::redirect_error(kUseAwaitable, ec));
  if (ec)
    co_return Status(StatusCode::kUnavailable, "cannot resolve " + address + ": " + ec.message());
  ec = asio::error::host_not_found;
  for (const auto& entry : endpoints) {
    const tcp::endpoint ep = entry.endpoint();
    beast::error_code ignored;
    tcp.socket().close(ignored);
    tcp.socket().open(ep.protocol(), ec);
    if (ec) continue;
    // Only where the kernel would route from it anyway: a loopback source
    // cannot reach another machine, nor another family's address.
    if (source && source->is_v4() == ep.address().is_v4() &&
        source->is_loopback() == ep.address().is_loopback()) {
      tcp.socket().bind(tcp::endpoint(*source, 0), ignored);
    }
    co_await tcp.async_connect(ep, asio::redirect_error(kUseAwaitable, ec));
    if (!ec || ec == beast::error::timeout) break;
  }
  if (ec)
    co_return Status(StatusCode::kUnavailable,
                     "cannot connect to " + address + ": " + ec.message());
  auto stream = std::make_unique<AnyStream>(make_stream(std::move(tcp), tls));
  if (auto* s = std::get_if<TlsStream>(stream.get())) {
    // The member's certificate must name the host we dialled (an IP SAN
    // for an IP address), as a browser or etcd's client checks it.
    s->set_verify_mode(asio::ssl::verify_peer);
    s->set_verify_callback(asio::ssl::host_name_verification(hp.host));
    beast::error_code not_ip;
    asio::ip::make_address(hp.host, not_ip);
    // SNI carries host names only (RFC 6066 §3).
    if (not_ip) SSL_set_tlsext_host_name(s->native_handle(), hp.host.c_str());
    co_await s->async_handshake(asio::ssl::stream_base::client,
                                asio::redirect_error(kUseAwaitable, ec));
    if (ec) {
      co_return Status(StatusCode::kUnavailable,
                       "TLS handshake with " + address + " failed: " + ec.message());
    }
  }
  co_return stream;
}

// Sends req on stream and reads the answer; see fetch() for the codes.
template <typename Stream>
asio::awaitable<Result<UpstreamReply>> exchange(Stream& stream, const std::string& address,
                                                bhttp::request<bhttp::string_body>& req,
                                                uint64_t max_reply_bytes, bool& reusable) {
  beast::error_code ec;
  const size_t sent = co_await bhttp::async_write(stream, req, asio::redirect_error(kUseAwaitable, ec));
  if (ec) {
    // Nothing written means nothing to process: safe to call it refused.
    if (sent == 0)
      co_return Status(StatusCode::kUnavailable, "sending to " + address + " failed: " + ec.message());
    co_return Status(StatusCode::kTimeout, "sending to " + address + " failed: " + ec.message());
  }
  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(max_reply_bytes);
  co_await bhttp::async_read(stream, buffer, parser, asio::redirect_error(kUseAwaitable, ec));
  if (ec) co_return Status(StatusCode::kTimeout, "no answer from " + address + ": " + ec.message());
  UpstreamReply reply;
  reply.status = parser.get().result_int();
  reply.body = std::move(parser.get().body());
  if (auto it = parser.get().find(bhttp::field::retry_after); it != parser.get().end()) {
    reply.retry_after = std::string(it->value());
  }
  reusable = parser.get().keep_alive() && buffer.size() == 0;
  co_return reply;
}

// One request to another node's API. kUnavailable: it cannot have been
// processed (no connection, or nothing was sent); kTimeout: it was sent and
// may have been. With a pool, a kept-alive connection is reused and kept.
// source: the local address to connect from (this node's API host), so that
// the leader sees a member's host and may use its reserved slots (admission.h).
// tls: when this node serves TLS, every member's API does (docs/api.md, "TLS").
asio::awaitable<Result<UpstreamReply>> fetch(std::string address, bhttp::verb method,
                                             std::string target, std::string body, bool forwarded,
                                             milliseconds timeout, uint64_t max_reply_bytes,
                                             std::optional<asio::ip::address> source,
                                             asio::ssl::context* tls,
                                             UpstreamPool* pool = nullptr,
                                             const std::optional<std::string>& idempotency_key = std::nullopt,
                                             const std::optional<std::string>& authorization = std::nullopt,
                                             std::string forwarded_caller = {}) {
  auto hp = parse_host_port(address);
  if (!hp) co_return Status(StatusCode::kInvalid, "bad address " + address);
  std::unique_ptr<AnyStream> stream = pool != nullptr ? pool->take(address) : nullptr;
  if (stream) {
    tcp_layer(*stream).expires_after(timeout);
  } else {
    auto connected = co_await connect_upstream(address, *hp, timeout, source, tls);
    if (!connected.is_ok()) co_return connected.status();
    stream = std::move(connected).value();
  }

  bhttp::request<bhttp::string_body> req{method, target, 11};
  req.set(bhttp::field::host, address);
  req.set(bhttp::field::user_agent, "consensuskv");
  req.set(bhttp::field::content_type, "application/json");
  if (forwarded) req.set(kForwardedHeader, "1");
  // The leader decides on the key; without it a retried forward could apply twice.
  if (idempotency_key) req.set(kIdempotencyKeyHeader, *idempotency_key);
  // The leader checks the caller's credentials itself (api.h, Request::authorization).
  if (authorization) req.set(bhttp::field::authorization, *authorization);
  // A caller known here by its certificate: this member vouches for it (auth/forwarded_caller.h).
  if (!forwarded_caller.empty()) req.set(auth::kForwardedCallerHeader, forwarded_caller);
  req.keep_alive(pool != nullptr);
  req.body() = std::move(body);
  req.prepare_payload();
  bool reusable = false;
  Result<UpstreamReply> reply = co_await std::visit(
      [&](auto& s) { return exchange(s, address, req, max_reply_bytes, reusable); }, *stream);
  if (reply.is_ok() && pool != nullptr && reusable) {
    tcp_layer(*stream).expires_never();
    pool->give_back(address, std::move(stream));
  } else {
    beast::error_code ec;
    tcp_layer(*stream).socket().shutdown(tcp::socket::shutdown_both, ec);
  }
  co_return reply;
}

bool is_voter(const node::NodeStatus& st) {
  for (const auto& m : st.members) {
    if (m.id == st.id) return m.role == "voter";
  }
  return false;
}

}  // namespace

namespace {

// A streamed answer's wake-ups, on its connection's strand: a producer's
// wake (strand_wake) and the client closing (spawn_close_reader) cancel the timer it waits on.
struct StreamSignals {
  explicit StreamSignals(const asio::any_io_executor& e) : timer(e) {}
  asio::steady_timer timer;
  bool woken = false;
  bool client_gone = false;
  bool reader_done = false;
};

// A wake callback for any thread: posts to the strand, never blocks.
std::function<void()> strand_wake(const asio::any_io_executor& ex, const std::shared_ptr<StreamSignals>& sig) {
  return [ex, weak = std::weak_ptr<StreamSignals>(sig)] {
    asio::post(ex, [weak] {
      if (auto s = weak.lock()) {
        s->woken = true;
        s->timer.cancel();
      }
    });
  };
}

// A reader on the same strand notices the client closing (grpc-gateway's
// stream ends with the request); what else it sends is ignored.
template <typename Stream>
void spawn_close_reader(const asio::any_io_executor& ex, Stream& stream, const std::shared_ptr<StreamSignals>& sig) {
  asio::co_spawn(
      ex,
      [&stream, sig]() -> asio::awaitable<void> {
        char sink[512];
        beast::error_code rec;
        while (!rec) {
          co_await stream.async_read_some(asio::buffer(sink), asio::redirect_error(kUseAwaitable, rec));
        }
        sig->client_gone = true;
        sig->reader_done = true;
        sig->timer.cancel();
      },
      asio::detached);
}

// The reader holds the stream: end the connection and wait for the reader before returning.
asio::awaitable<void> end_stream(beast::tcp_stream& tcp, StreamSignals& sig) {
  beast::error_code ec;
  tcp.socket().shutdown(tcp::socket::shutdown_both, ec);
  tcp.cancel();
  while (!sig.reader_done) {
    sig.timer.expires_at(asio::steady_timer::time_point::max());
    co_await sig.timer.async_wait(asio::redirect_error(kUseAwaitable, ec));
  }
}

}  // namespace

class HttpServer::Impl {
 public:
  Impl(node::Node& node, node::MemberInfo self, ServerOptions options)
      : node_(node),
        self_(std::move(self)),
        options_(std::move(options)),
        api_(node, ApiOptions{options_.commit_timeout_ms, options_.join_timeout_ms, self_.grpc_address, options_.kv, options_.lease,
                            options_.auth, options_.lock, options_.election, options_.maintenance}),
        admission_(AdmissionLimits{options_.max_connections, options_.max_connections_per_ip,
                                   options_.member_connections}),
        body_budget_(std::max(kDefaultMaxBufferedBodyBytes, options_.max_body_bytes)),
        acceptor_(ioc_) {
    if (auto hp = parse_host_port(self_.api_address)) {
      beast::error_code ec;
      auto a = asio::ip::make_address(hp->host, ec);
      if (!ec && !a.is_unspecified()) source_address_ = a;
    }
  }

  Status start();
  void join_via(std::string target) {
    asio::co_spawn(ioc_, join_loop(std::move(target)), asio::detached);
  }
  void register_self(const node::MemberInfo& leader);
  void fetch_peer_status(const node::MemberInfo& peer, std::function<void(Result<node::PeerView>)> done);
  asio::awaitable<void> peer_status_once(std::string address, std::function<void(Result<node::PeerView>)> done);
  void stop();

 private:
  asio::awaitable<void> accept_loop();
  // One served connection. Its strand alone touches it; evict() reaches it
  // through connections_ by posting to that strand.
  struct Connection {
    Connection(tcp::socket socket, asio::ssl::context* tls)
        : stream(make_stream(beast::tcp_stream(std::move(socket)), tls)) {}
    AnyStream stream;      // TLS when the server has a certificate
    std::string cert_cn;   // the verified client certificate's CN (Request::client_cert_cn)
    bool busy = false;     // a request is being handled: never evicted
    bool evicted = false;  // closed by evict(): what was read is not handled
  };
  // head_deadline: when the TLS handshake and the first request head must be
  // in (-http-header-timeout-ms from accept).
  asio::awaitable<void> session(std::shared_ptr<Connection> conn, std::string ip,
                                Admission admitted,
                                std::chrono::steady_clock::time_point head_deadline);
  // False when the connection is done (failed, timed out, or answered as
  // plaintext HTTP sent to the TLS port).
  asio::awaitable<bool> tls_handshake(TlsStream& stream, const Connection& conn,
                                      const std::string& ip,
                                      std::chrono::steady_clock::time_point deadline);
  // The request loop, the same for plain and TLS streams.
  template <typename Stream>
  asio::awaitable<void> serve_requests(Stream& stream, Connection& conn, const std::string& ip,
                                       const Admission& admitted,
                                       std::chrono::steady_clock::time_point head_deadline);
  // A TLS problem worth an operator's attention, at most once a second
  // (a scan or a misconfigured client would otherwise fill the log).
  void log_tls_refusal(const std::string& ip, const std::string& why);
  // Closes the connection with this admission id if it is still waiting for
  // a request (admission.h, "Eviction"). Any thread.
  void evict(uint64_t id);
  asio::awaitable<void> refuse(tcp::socket socket, Response answer);
  asio::awaitable<void> member_hosts_loop();
  bool is_member_host(const std::string& ip) const;
  // Why a connection over -http-max-connections is refused (the 503's text).
  std::string too_many_connections() const {
    return "too many connections (limit " + std::to_string(options_.max_connections) +
           ", -http-max-connections)";
  }
  asio::awaitable<Response> forward(const Forward& f, bhttp::verb method, const Request& r);
  // etcd's streaming POST /v3/watch (docs/api.md): the WatchRequests in the
  // body, then {"result": WatchResponse} lines in a chunked response until
  // the client goes away. The connection ends with it.
  template <typename Stream>
  asio::awaitable<void> serve_watch(Stream& stream, const Request& r, unsigned version);
  // etcd's streaming POST /v3/election/observe (etcd_election_json.h): the
  // headers with the first line, then {"result": LeaderResponse} lines
  // until the observation ends or the client goes away; the connection ends with it.
  template <typename Stream>
  asio::awaitable<void> serve_observe(Stream& stream, const Request& r, unsigned version);
  // etcd's streaming POST /v3/maintenance/snapshot: a fresh backup
  // (Node::write_backup) as {"result": SnapshotResponse} lines in a chunked
  // response, one chunk (etcd/backup_stream.h) in memory at a time.
  template <typename Stream>
  asio::awaitable<void> serve_snapshot(Stream& stream, const Request& r, unsigned version);
  asio::ssl::context* client_tls() { return client_tls_ ? &*client_tls_ : nullptr; }
  asio::awaitable<void> register_once(std::string leader_api_address);
  asio::awaitable<void> join_loop(std::string target);
  std::string join_target() const;
  std::optional<std::string> join_authorization() const {
    return options_.join_authorization.empty() ? std::nullopt : std::optional<std::string>(options_.join_authorization);
  }

  node::Node& node_;
  const node::MemberInfo self_;
  const ServerOptions options_;
  Api api_;
  // Declared before ioc_, so they outlive it: destroying the context destroys
  // the coroutine frames still pending, whose guards release slots here.
  ConnectionAdmission admission_;
  BodyBudget body_budget_;
  std::atomic<int> refusing_{0};            // refuse() coroutines running
  std::atomic<uint64_t> refused_total_{0};  // connections refused since start
  std::atomic<uint64_t> evicted_total_{0};  // connections evicted since start
  std::atomic<int> forwards_in_flight_{0};  // bounded by kMaxForwardsInFlight
  std::atomic<int> watch_streams_{0};       // bounded by kMaxGatewayWatchStreams
  std::optional<asio::ip::address> source_address_;  // this node's API host, if an IP
  // Canonical IPs of the members' raft and API hosts (admission.h).
  mutable std::mutex member_hosts_mu_;
  std::set<std::string> member_hosts_;
  // Served connections by admission id, for evict().
  std::mutex connections_mu_;
  std::unordered_map<uint64_t, std::weak_ptr<Connection>> connections_;
  asio::io_context ioc_;
  // From options_.tls (start()); the client context verifies other
  // members' certificates and presents ours (docs/api.md, "TLS").
  std::optional<asio::ssl::context> server_tls_;
  std::optional<asio::ssl::context> client_tls_;
  std::atomic<int64_t> tls_log_at_ms_{0};       // when log_tls_refusal last logged
  std::atomic<uint64_t> tls_refused_total_{0};  // handshakes refused since start
  UpstreamPool upstreams_;  // after ioc_: its sockets must close before the context goes
  tcp::acceptor acceptor_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> registering_{false};  // one registration request at a time
  int register_failures_ = 0;             // only touched by register_once, one at a time
};

Status HttpServer::Impl::start() {
  if (options_.tls) {
    auto server = make_tls_context(*options_.tls, asio::ssl::context::tls_server);
    if (!server.is_ok()) return server.status();
    auto client = make_tls_context(*options_.tls, asio::ssl::context::tls_client);
    if (!client.is_ok()) return client.status();
    server_tls_.emplace(std::move(server).value());
    client_tls_.emplace(std::move(client).value());
  }
  auto hp = parse_host_port(options_.listen_address);
  if (!hp)
    return Status(StatusCode::kInvalid,
                  "API address must be host:port: " + options_.listen_address);
  beast::error_code ec;
  tcp::resolver resolver(ioc_);
  auto endpoints = resolver.resolve(hp->host, std::to_string(hp->port), tcp::resolver::passive, ec);
  if (ec || endpoints.empty()) {
    return Status(StatusCode::kInvalid,
                  "cannot resolve API address " + options_.listen_address + ": " + ec.message());
  }
  const tcp::endpoint ep = endpoints.begin()->endpoint();
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return Status(StatusCode::kIo,
                  "cannot listen on " + options_.listen_address + ": " + ec.message());
  asio::co_spawn(ioc_, accept_loop(), asio::detached);
  asio::co_spawn(ioc_, member_hosts_loop(), asio::detached);
  for (int i = 0; i < std::max(1, options_.threads); ++i)
    threads_.push_back(named_thread("ckv-http", [this] { ioc_.run(); }));
  return Status::ok();
}

void HttpServer::Impl::stop() {
  if (stopping_.exchange(true)) return;
  asio::post(ioc_, [this] {
    beast::error_code ec;
    acceptor_.close(ec);
  });
  ioc_.stop();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

asio::awaitable<void> HttpServer::Impl::accept_loop() {
  for (;;) {
    beast::error_code ec;
    // Each connection gets a strand: with several io threads, the stream's
    // timer and I/O completions must not run concurrently.
    asio::any_io_executor strand = asio::make_strand(ioc_);
    tcp::socket socket =
        co_await acceptor_.async_accept(strand, asio::redirect_error(kUseAwaitable, ec));
    if (ec) {
      if (stopping_ || !acceptor_.is_open()) co_return;
      // Typically EMFILE: back off instead of spinning on the error.
      spdlog::warn("http: accept failed: {}", ec.message());
      asio::steady_timer t(ioc_, milliseconds(100));
      co_await t.async_wait(asio::redirect_error(kUseAwaitable, ec));
      continue;
    }
    const tcp::endpoint remote = socket.remote_endpoint(ec);
    if (ec) continue;  // already gone; the socket closes here
    std::string ip = canonical_ip(remote.address());
    const Admission admitted = admission_.admit(ip, is_member_host(ip));
    const Admitted pool = admitted.pool;
    if (pool == Admitted::kClient || pool == Admitted::kMember) {
      // Registered before the session runs, so that it can be evicted from
      // the start; the victim's slot frees once its session ends.
      auto conn =
          std::make_shared<Connection>(std::move(socket), server_tls_ ? &*server_tls_ : nullptr);
      {
        std::lock_guard lock(connections_mu_);
        connections_.emplace(admitted.id, conn);
      }
      if (admitted.evict != 0) {
        // Under a slowloris flood this is every accept: log the first and
        // then every kRefusalLogEvery-th.
        if (const uint64_t n = evicted_total_++; n % kRefusalLogEvery == 0) {
          spdlog::warn(
              "http: connections full; closing the one that waited longest for its client to "
              "admit {} ({} evicted so far; a slow or flooding client? see docs/api.md, Limits)",
              ip, n + 1);
        }
        evict(admitted.evict);
      }
      const auto head_deadline =
          std::chrono::steady_clock::now() + milliseconds(options_.header_timeout_ms);
      asio::co_spawn(strand, session(std::move(conn), std::move(ip), admitted, head_deadline),
                     asio::detached);
      continue;
    }
    const std::string why =
        pool == Admitted::kRefusedTotal
            ? too_many_connections()
            : "too many connections from " + ip + " (limit " +
                  std::to_string(options_.max_connections_per_ip) +
                  " per address, -http-max-connections-per-ip)";
    if (const uint64_t n = refused_total_++; n % kRefusalLogEvery == 0)
      spdlog::warn("http: refusing a connection from {}: {} ({} refused so far)", ip, why, n + 1);
    if (refusing_.fetch_add(1) < kMaxConcurrentRefusals) {
      asio::co_spawn(strand, refuse(std::move(socket), error_response(503, why)), asio::detached);
    } else {
      --refusing_;
      socket.close(ec);
    }
  }
}

void HttpServer::Impl::evict(uint64_t id) {
  std::shared_ptr<Connection> conn;
  {
    std::lock_guard lock(connections_mu_);
    if (auto it = connections_.find(id); it != connections_.end()) conn = it->second.lock();
  }
  if (!conn) return;  // ended meanwhile: its slot is free already
  asio::post(tcp_layer(conn->stream).get_executor(), [conn] {
    // On the connection's strand: either its request head completed first
    // (busy: keep it; it waits again later and can be evicted then) or the
    // session sees `evicted` before handling anything it read.
    if (conn->busy) return;
    conn->evicted = true;
    tcp_layer(conn->stream).close();
  });
}

bool HttpServer::Impl::is_member_host(const std::string& ip) const {
  std::lock_guard lock(member_hosts_mu_);
  return member_hosts_.count(ip) > 0;
}

asio::awaitable<void> HttpServer::Impl::member_hosts_loop() {
  asio::steady_timer timer(ioc_);
  tcp::resolver resolver(ioc_);
  std::set<std::string> addresses;  // the members' host:port strings last resolved
  auto resolved_at = std::chrono::steady_clock::time_point();
  while (!stopping_) {
    std::set<std::string> now;
    for (const node::MemberStatus& m : node_.status().members) {
      if (!m.info.raft_address.empty()) now.insert(m.info.raft_address);
      if (!m.info.api_address.empty()) now.insert(m.info.api_address);
    }
    if (now != addresses || std::chrono::steady_clock::now() - resolved_at > kMemberHostsReresolve) {
      std::set<std::string> hosts;
      for (const std::string& address : now) {
        auto hp = parse_host_port(address);
        if (!hp) continue;
        beast::error_code ec;
        const auto literal = asio::ip::make_address(hp->host, ec);
        if (!ec) {
          hosts.insert(canonical_ip(literal));
          continue;
        }
        auto results = co_await resolver.async_resolve(hp->host, std::to_string(hp->port),
                                                       asio::redirect_error(kUseAwaitable, ec));
        if (ec) continue;  // tried again at the next change or re-resolve
        for (const auto& r : results) hosts.insert(canonical_ip(r.endpoint().address()));
      }
      {
        std::lock_guard lock(member_hosts_mu_);
        member_hosts_ = std::move(hosts);
      }
      addresses = std::move(now);
      resolved_at = std::chrono::steady_clock::now();
    }
    beast::error_code ec;
    timer.expires_after(kMemberHostsRefresh);
    co_await timer.async_wait(asio::redirect_error(kUseAwaitable, ec));
  }
}

namespace {

using BeastResponse = bhttp::response<bhttp::string_body>;

BeastResponse to_beast(const Response& r, unsigned version, bool keep_alive) {
  BeastResponse res;
  res.version(version);
  res.result(r.status);
  res.set(bhttp::field::server, "consensuskv");
  res.set(bhttp::field::content_type, "application/json");
  for (const auto& [name, value] : r.headers) res.set(name, value);
  res.keep_alive(keep_alive);
  res.body() = r.body;
  res.prepare_payload();
  return res;
}

// A stream route's answer that is not a stream (a refusal); the connection ends after it.
template <typename Stream>
asio::awaitable<void> write_last_response(Stream& stream, const Response& res, unsigned version) {
  auto out = to_beast(res, version, false);
  beast::get_lowest_layer(stream).expires_after(kWriteTimeout);
  beast::error_code ec;
  co_await bhttp::async_write(stream, out, asio::redirect_error(kUseAwaitable, ec));
}

// Closing a socket with unread input makes the kernel send a reset, and a
// client still sending its (refused) body may then never see our answer.
// So: stop sending, read and drop what still comes, bounded in time and bytes.
// Over TLS the bytes read are records to decrypt and drop, the same way.
template <typename Stream>
asio::awaitable<void> drain_and_close(Stream& stream) {
  beast::tcp_stream& tcp = beast::get_lowest_layer(stream);
  beast::error_code ec;
  tcp.socket().shutdown(tcp::socket::shutdown_send, ec);
  tcp.expires_after(kDrainTimeout);
  std::vector<char> sink(64 * 1024);
  for (size_t total = 0; !ec && total < kMaxDrainBytes;) {
    total += co_await stream.async_read_some(asio::buffer(sink),
                                             asio::redirect_error(kUseAwaitable, ec));
  }
  tcp.socket().close(ec);
}

// Ends a connection we are done with. Over TLS a close_notify goes first
// (so the client can tell our end from a cut connection), waiting at most
// kTlsShutdownTimeout for the client's own.
asio::awaitable<void> finish(PlainStream& stream) {
  beast::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  co_return;
}
asio::awaitable<void> finish(TlsStream& stream) {
  beast::error_code ec;
  beast::get_lowest_layer(stream).expires_after(kTlsShutdownTimeout);
  co_await stream.async_shutdown(asio::redirect_error(kUseAwaitable, ec));
  beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_send, ec);
}

}  // namespace

asio::awaitable<void> HttpServer::Impl::refuse(tcp::socket socket, Response answer) {
  struct Running {
    std::atomic<int>& n;
    ~Running() { --n; }
  } running{refusing_};
  AnyStream stream =
      make_stream(beast::tcp_stream(std::move(socket)), server_tls_ ? &*server_tls_ : nullptr);
  beast::tcp_stream& tcp = tcp_layer(stream);
  // Handshake and answer together within the refusal timeout: a TLS client
  // gets a readable 503 too, and a refusal costs a bounded time.
  tcp.expires_after(kRefusalWriteTimeout);
  beast::error_code ec;
  if (auto* tls = std::get_if<TlsStream>(&stream)) {
    co_await tls->async_handshake(asio::ssl::stream_base::server,
                                  asio::redirect_error(kUseAwaitable, ec));
    if (ec) co_return;  // closed on return
  }
  auto res = to_beast(answer, 11, false);
  co_await std::visit(
      [&](auto& s) -> asio::awaitable<void> {
        co_await bhttp::async_write(s, res, asio::redirect_error(kUseAwaitable, ec));
      },
      stream);
  tcp.socket().shutdown(tcp::socket::shutdown_both, ec);
}

void HttpServer::Impl::log_tls_refusal(const std::string& ip, const std::string& why) {
  const uint64_t n = ++tls_refused_total_;
  const int64_t now_ms =
      std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count();
  int64_t last = tls_log_at_ms_.load();
  if (now_ms - last < kTlsLogIntervalMs && last != 0) return;
  if (!tls_log_at_ms_.compare_exchange_strong(last, now_ms)) return;  // another thread logs
  spdlog::warn("http: refused a TLS connection from {}: {} ({} refused since start)", ip, why, n);
}

asio::awaitable<bool> HttpServer::Impl::tls_handshake(
    TlsStream& stream, const Connection& conn, const std::string& ip,
    std::chrono::steady_clock::time_point deadline) {
  beast::tcp_stream& tcp = beast::get_lowest_layer(stream);
  // The handshake is part of the first request's head deadline: a client
  // that connects and never finishes it holds its slot no longer than one
  // that never sends a request line (slowloris over TLS).
  tcp.expires_at(deadline);
  beast::error_code ec;
  co_await stream.async_handshake(asio::ssl::stream_base::server,
                                  asio::redirect_error(kUseAwaitable, ec));
  if (!ec) co_return true;
  // Evicted for a newer client (admission.h): already counted and logged there.
  if (conn.evicted) co_return false;
  if (ec == beast::error::timeout) {
    spdlog::debug("http: closing a connection from {}: TLS handshake not done within {} ms", ip,
                  options_.header_timeout_ms);
    co_return false;
  }
  if (ec.category() == asio::error::get_ssl_category() &&
      ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == SSL_R_HTTP_REQUEST) {
    // Plain HTTP sent to the TLS port: answer in plain HTTP, as Go's
    // servers do, so that curl shows why instead of an empty reply.
    log_tls_refusal(ip, "plaintext HTTP request on the TLS port");
    auto res = to_beast(error_response(400, kPlainHttpToTls), 11, false);
    tcp.expires_after(kRefusalWriteTimeout);
    co_await bhttp::async_write(tcp, res, asio::redirect_error(kUseAwaitable, ec));
    if (!ec) co_await drain_and_close(tcp);
    co_return false;
  }
  log_tls_refusal(ip, "TLS handshake failed: " + ec.message());
  co_return false;
}

asio::awaitable<void> HttpServer::Impl::session(
    std::shared_ptr<Connection> conn, std::string ip, Admission admitted,
    std::chrono::steady_clock::time_point head_deadline) {
  // Releases the connection slot however the coroutine ends.
  struct Slot {
    Impl& server;
    uint64_t id;
    ~Slot() {
      {
        std::lock_guard lock(server.connections_mu_);
        server.connections_.erase(id);
      }
      server.admission_.release(id);
    }
  } slot{*this, admitted.id};
  if (auto* tls = std::get_if<TlsStream>(&conn->stream)) {
    if (!co_await tls_handshake(*tls, *conn, ip, head_deadline) || conn->evicted) co_return;
    if (options_.tls && options_.tls->verify_clients) conn->cert_cn = verified_client_cn(tls->native_handle());
  }
  co_await std::visit(
      [&](auto& stream) { return serve_requests(stream, *conn, ip, admitted, head_deadline); },
      conn->stream);
}

template <typename Stream>
asio::awaitable<void> HttpServer::Impl::serve_watch(Stream& stream, const Request& r,
                                                    unsigned version) {
  beast::tcp_stream& tcp = beast::get_lowest_layer(stream);
  beast::error_code ec;
  auto answer = [&](const Response& res) { return write_last_response(stream, res, version); };
  auto calls = watch_calls_from_json(r.body);
  if (!calls.is_ok()) {
    // etcd's gateway answers a body it cannot read with 500 and code 2 (Unknown).
    co_await answer(gateway_error(500, 2, calls.status().message()));
    co_return;
  }
  struct Counted {
    std::atomic<int>& n;
    ~Counted() { n.fetch_sub(1); }
  } counted{watch_streams_};
  if (watch_streams_.fetch_add(1) >= kMaxGatewayWatchStreams) {
    co_await answer(gateway_error(503, 14,
                                  "too many /v3/watch streams (limit " +
                                      std::to_string(kMaxGatewayWatchStreams) + "); retry"));
    co_return;
  }
  // Everything below runs on the connection's strand: the hub's wake (from
  // its notifier thread) posts here and cancels the wait.
  auto ex = co_await asio::this_coro::executor;
  auto sig = std::make_shared<StreamSignals>(ex);
  std::unique_ptr<watch::Stream> ws = node_.watch_hub().open_stream(strand_wake(ex, sig));
  if (!ws) {
    co_await answer(gateway_error(503, 14, "too many watch streams on this member; retry"));
    co_return;
  }
  // With auth on, every watch needs READ on its whole range (as the gRPC
  // Watch checks each create). A refused one is answered as etcd 3.4 does:
  // created and canceled, watch_id -1 (etcd::watch_cancel_reason), in its
  // place among the other answers; the stream goes on.
  std::vector<std::string> first_lines;
  const etcd::Credentials creds =
      options_.auth != nullptr ? gateway_credentials(r) : etcd::Credentials{};
  for (const WatchCall& c : calls.value()) {
    if (c.kind == WatchCall::Kind::kCreate && options_.auth != nullptr) {
      if (Status s = options_.auth->require_read(creds, c.spec.key, c.spec.range_end, "Watch"); !s.is_ok()) {
        const node::NodeStatus st = node_.status();
        const etcd::Header h = etcd::header_for(st, false);
        while (std::optional<watch::Delivery> d = ws->next()) first_lines.push_back(watch_result_json(*d, h) + "\n");
        watch::Delivery refused;
        refused.watch_id = -1;
        refused.revision = st.revision;
        refused.created = true;
        refused.canceled = true;
        refused.cancel_reason = etcd::watch_cancel_reason(s);
        first_lines.push_back(watch_result_json(refused, h) + "\n");
        continue;
      }
    }
    if (c.kind == WatchCall::Kind::kCreate) ws->create(c.spec, c.watch_id);
    if (c.kind == WatchCall::Kind::kCancel) ws->cancel(c.watch_id);
    if (c.kind == WatchCall::Kind::kProgress) ws->request_progress();
  }
  bhttp::response<bhttp::empty_body> head{bhttp::status::ok, version};
  head.set(bhttp::field::content_type, "application/json");
  head.chunked(true);
  bhttp::response_serializer<bhttp::empty_body> serializer{head};
  tcp.expires_after(kWriteTimeout);
  co_await bhttp::async_write_header(stream, serializer, asio::redirect_error(kUseAwaitable, ec));
  if (ec) co_return;
  tcp.expires_never();
  for (const std::string& line : first_lines) {
    tcp.expires_after(kWriteTimeout);
    co_await asio::async_write(stream, bhttp::make_chunk(asio::buffer(line)), asio::redirect_error(kUseAwaitable, ec));
    tcp.expires_never();
    if (ec) co_return;
  }
  spawn_close_reader(ex, stream, sig);
  while (!sig->client_gone) {
    sig->woken = false;
    std::optional<watch::Delivery> d = ws->next();
    if (!d) {
      if (sig->woken || sig->client_gone) continue;
      sig->timer.expires_at(asio::steady_timer::time_point::max());
      co_await sig->timer.async_wait(asio::redirect_error(kUseAwaitable, ec));
      continue;
    }
    const etcd::Header h = etcd::header_for(node_.status(), false);
    const std::string line = watch_result_json(*d, h) + "\n";
    // A client that stops reading: its watchers fall back to catching up
    // from history (bounded queues, watch_hub.h); this write waits for it
    // at most kWriteTimeout, then the connection goes.
    tcp.expires_after(kWriteTimeout);
    co_await asio::async_write(stream, bhttp::make_chunk(asio::buffer(line)),
                               asio::redirect_error(kUseAwaitable, ec));
    tcp.expires_never();
    if (ec) break;
  }
  ws->close();
  co_await end_stream(tcp, *sig);
}

template <typename Stream>
asio::awaitable<void> HttpServer::Impl::serve_observe(Stream& stream, const Request& r, unsigned version) {
  beast::tcp_stream& tcp = beast::get_lowest_layer(stream);
  beast::error_code ec;
  auto answer = [&](const Response& res) { return write_last_response(stream, res, version); };
  if (options_.election == nullptr) {
    co_await answer(gateway_error(501, 12, std::string("consensuskv: ") + kEtcdObservePath + " is not implemented yet"));
    co_return;
  }
  Result<std::string> name = observe_name_from_json(r.body);
  if (!name.is_ok()) {
    co_await answer(gateway_bad_body(name.status()));
    co_return;
  }
  auto ex = co_await asio::this_coro::executor;
  auto sig = std::make_shared<StreamSignals>(ex);
  etcd::KvCall call;  // a client's, never a member's forward
  call.credentials = gateway_credentials(r);
  std::unique_ptr<etcd::Observation> obs = options_.election->observe(name.value(), std::move(call), strand_wake(ex, sig));
  spawn_close_reader(ex, stream, sig);
  // As grpc-gateway: the head goes with the first line (an error first: its status).
  bhttp::response<bhttp::empty_body> head{bhttp::status::ok, version};
  head.set(bhttp::field::content_type, "application/json");
  head.chunked(true);
  bhttp::response_serializer<bhttp::empty_body> serializer{head};
  bool head_sent = false;
  auto send = [&](const std::string& line, unsigned status) -> asio::awaitable<void> {
    tcp.expires_after(kWriteTimeout);
    if (!head_sent) {
      head.result(status);
      head_sent = true;
      co_await bhttp::async_write_header(stream, serializer, asio::redirect_error(kUseAwaitable, ec));
    }
    if (!ec && !line.empty()) {
      co_await asio::async_write(stream, bhttp::make_chunk(asio::buffer(line)), asio::redirect_error(kUseAwaitable, ec));
    }
    tcp.expires_never();
  };
  while (!sig->client_gone && !ec) {
    sig->woken = false;
    if (std::optional<etcd::LeaderAnswer> a = obs->next()) {
      co_await send(observe_result_json(*a) + "\n", 200);
      continue;
    }
    if (std::optional<Status> end = obs->ended()) {
      if (!end->is_ok()) co_await send(observe_error_json(*end) + "\n", 500);
      if (!ec) co_await send("", 200);  // the head, if nothing was sent yet
      if (!ec) {
        tcp.expires_after(kWriteTimeout);
        co_await asio::async_write(stream, bhttp::make_chunk_last(), asio::redirect_error(kUseAwaitable, ec));
        tcp.expires_never();
      }
      break;
    }
    if (sig->woken || sig->client_gone) continue;
    sig->timer.expires_at(asio::steady_timer::time_point::max());
    co_await sig->timer.async_wait(asio::redirect_error(kUseAwaitable, ec));
    ec = {};
  }
  obs->close();
  co_await end_stream(tcp, *sig);
}

template <typename Stream>
asio::awaitable<void> HttpServer::Impl::serve_snapshot(Stream& stream, const Request& r, unsigned version) {
  beast::tcp_stream& tcp = beast::get_lowest_layer(stream);
  beast::error_code ec;
  // A backup is every key: root only once auth is on (Maintenance.Snapshot too).
  if (options_.auth != nullptr) {
    if (Status s = options_.auth->require_admin(gateway_credentials(r), "a snapshot"); !s.is_ok()) {
      const int code = etcd::grpc_code_of(s);
      auto out = to_beast(gateway_error(gateway_http_status(code), code, s.message()), version, false);
      tcp.expires_after(kWriteTimeout);
      co_await bhttp::async_write(stream, out, asio::redirect_error(kUseAwaitable, ec));
      co_return;
    }
  }
  // The node writes the copy first (seconds for a large store); the
  // connection's strand waits for its answer without blocking.
  Result<node::BackupFile> file = co_await from_callback<Result<node::BackupFile>>(
      [this](std::function<void(Result<node::BackupFile>)> done) { node_.write_backup(std::move(done)); });
  Result<std::unique_ptr<etcd::BackupStream>> backup =
      file.is_ok() ? etcd::BackupStream::from_file(file.value()) : Result<std::unique_ptr<etcd::BackupStream>>(file.status());
  if (!backup.is_ok()) {
    auto out = to_beast(gateway_error(503, 14, "etcdserver: " + backup.status().message()), version, false);
    tcp.expires_after(kWriteTimeout);
    co_await bhttp::async_write(stream, out, asio::redirect_error(kUseAwaitable, ec));
    co_return;
  }
  bhttp::response<bhttp::empty_body> head{bhttp::status::ok, version};
  head.set(bhttp::field::content_type, "application/json");
  head.chunked(true);
  bhttp::response_serializer<bhttp::empty_body> serializer{head};
  tcp.expires_after(kWriteTimeout);
  co_await bhttp::async_write_header(stream, serializer, asio::redirect_error(kUseAwaitable, ec));
  for (bool last = false; !ec && !last;) {
    auto piece = backup.value()->next();
    if (!piece.is_ok()) break;  // the client sees the stream end without its SHA-256: a failed download
    last = piece.value().last;
    const std::string line = gateway_snapshot_line(piece.value().blob, piece.value().remaining_bytes);
    // A client that stops reading holds this write for kWriteTimeout, then the connection goes.
    tcp.expires_after(kWriteTimeout);
    co_await asio::async_write(stream, bhttp::make_chunk(asio::buffer(line)), asio::redirect_error(kUseAwaitable, ec));
  }
  if (!ec) {
    tcp.expires_after(kWriteTimeout);
    co_await asio::async_write(stream, bhttp::make_chunk_last(), asio::redirect_error(kUseAwaitable, ec));
  }
  tcp.expires_never();
}

template <typename Stream>
asio::awaitable<void> HttpServer::Impl::serve_requests(
    Stream& stream, Connection& conn, const std::string& ip, const Admission& admitted,
    std::chrono::steady_clock::time_point head_deadline) {
  const Admitted pool = admitted.pool;
  // Deadlines and shutdown act on the TCP layer (under TLS, too).
  beast::tcp_stream& tcp = beast::get_lowest_layer(stream);
  beast::flat_buffer buffer;
  beast::error_code ec;
  auto too_large = [this] {
    return error_response(413, "request body over the limit of " +
                                   std::to_string(options_.max_body_bytes) +
                                   " bytes (-max-body-bytes)");
  };
  // Every answer is counted in send (metrics/instruments.h): under the
  // route its head named ("other" before one is read), timed from the head.
  size_t route = http_metrics_route("");
  auto started = std::chrono::steady_clock::now();
  auto send = [&](const Response& r, unsigned version, bool keep_alive) -> asio::awaitable<bool> {
    metrics::instruments().http.record(route, r.status, metrics::ScopedTimer::seconds_since(started));
    auto res = to_beast(r, version, keep_alive);
    tcp.expires_after(kWriteTimeout);
    co_await bhttp::async_write(stream, res, asio::redirect_error(kUseAwaitable, ec));
    co_return !ec && keep_alive;
  };

  for (bool first = true;; first = false) {
    bhttp::request_parser<bhttp::string_body> parser;
    // The largest any route takes; once the head says which route, its own
    // limit applies (body_limit_for, below) before the body is read.
    parser.body_limit(std::max(options_.max_body_bytes, kEtcdGatewayMaxBodyBytes));
    // Keys travel in the URL of /get: room for the longest key URL-encoded
    // (limits.h), not Beast's 8 KiB, so any key written can be read.
    parser.header_limit(kMaxRequestHeadBytes);
    if (!first) {
      // Evictable again (admission.h) until the next request head is in.
      conn.busy = false;
      admission_.waiting(admitted.id);
    }
    if (!first && buffer.size() == 0) {
      // Kept alive between requests: idle until the next one starts.
      tcp.expires_after(milliseconds(options_.idle_timeout_ms));
      const size_t n = co_await stream.async_read_some(buffer.prepare(kFirstReadBytes),
                                                       asio::redirect_error(kUseAwaitable, ec));
      buffer.commit(n);
      if (ec) break;  // idle timeout, or the client closed: nothing to answer
    }
    // One deadline for the whole head, however it trickles in (slowloris):
    // for a first request it runs from accept (a TLS handshake included), so
    // connecting and sending nothing does not hold a slot for the idle
    // timeout either. On expiry Beast closes the socket; there is no one
    // worth answering.
    if (first) {
      tcp.expires_at(head_deadline);
    } else {
      tcp.expires_after(milliseconds(options_.header_timeout_ms));
    }
    co_await bhttp::async_read_header(stream, buffer, parser,
                                      asio::redirect_error(kUseAwaitable, ec));
    if (ec == beast::error::timeout) {
      spdlog::debug("http: closing a connection from {}: no complete request head within {} ms",
                    ip, options_.header_timeout_ms);
      break;
    }
    if (ec == bhttp::error::end_of_stream || ec == asio::error::eof || conn.evicted) break;
    started = std::chrono::steady_clock::now();
    route = http_metrics_route(std::string_view(parser.get().target().data(), parser.get().target().size()));
    // Beast already refuses a Content-Length over the limit here, before
    // reading the body (the client may be waiting for "100 Continue").
    // (The request line is parsed before the fields, so the target is known.)
    const bool gateway = is_etcd_gateway_target(
        std::string_view(parser.get().target().data(), parser.get().target().size()));
    const uint64_t body_limit = gateway
                                    ? std::max(options_.max_body_bytes, kEtcdGatewayMaxBodyBytes)
                                    : options_.max_body_bytes;
    // Over its route's limit: the seed API's 413, or on the /v3/ gateway what
    // etcd's answers for a message its gRPC server refuses (etcd_gateway.h).
    auto refuse_body = [&](uint64_t bytes) {
      return gateway ? etcd_gateway_message_too_large(bytes) : too_large();
    };
    if (ec == bhttp::error::body_limit ||
        (!ec && parser.content_length() && *parser.content_length() > body_limit)) {
      (void)co_await send(refuse_body(parser.content_length().value_or(body_limit + 1)),
                          parser.get().version(), false);
      co_await drain_and_close(stream);
      co_return;
    }
    if (ec) {
      if (ec.category() == bhttp::make_error_code(bhttp::error::bad_version).category()) {
        if (ec == bhttp::error::header_limit) {
          (void)co_await send(
              error_response(431, "request line and headers over the limit of " +
                                      std::to_string(kMaxRequestHeadBytes) +
                                      " bytes (room for the longest key, " +
                                      std::to_string(kMaxKeyBytes) + " bytes, URL-encoded)"),
              11, false);
        } else {
          (void)co_await send(error_response(400, "malformed HTTP request: " + ec.message()), 11,
                              false);
        }
      }
      break;
    }
    const unsigned version = parser.get().version();
    const bool forwarded = parser.get().find(kForwardedHeader) != parser.get().end();
    // A reserved slot (admission.h) serves forwarded requests only: anyone
    // else from a member's host would be taking the members' capacity.
    if (pool == Admitted::kMember && !forwarded) {
      (void)co_await send(error_response(503, too_many_connections()), version, false);
      co_await drain_and_close(stream);
      co_return;
    }
    // The body budget (admission.h), taken before the body is read (or
    // "100 Continue" invites it) and given back once this request is answered.
    uint64_t budgeted = 0;
    if (!parser.is_done() && !(forwarded && is_member_host(ip))) {
      const uint64_t declared = parser.content_length().value_or(body_limit);
      if (!body_budget_.try_take(declared)) {
        (void)co_await send(
            error_response(503, "too many request bytes in flight (limit " +
                                    std::to_string(body_budget_.limit_bytes()) + " bytes); retry"),
            version, false);
        co_await drain_and_close(stream);
        co_return;
      }
      budgeted = declared;
    }
    struct Budgeted {
      BodyBudget& budget;
      uint64_t bytes;
      ~Budgeted() {
        if (bytes > 0) budget.give_back(bytes);
      }
    } budgeted_guard{body_budget_, budgeted};
    if (auto it = parser.get().find(bhttp::field::expect);
        it != parser.get().end() && beast::iequals(it->value(), "100-continue")) {
      bhttp::response<bhttp::empty_body> cont{bhttp::status::continue_, version};
      tcp.expires_after(kWriteTimeout);
      co_await bhttp::async_write(stream, cont, asio::redirect_error(kUseAwaitable, ec));
      if (ec) break;
    }
    if (!parser.is_done()) {
      // Before any body byte is parsed (Beast allows no later change).
      parser.body_limit(body_limit);
      // One deadline for the whole body, like the head's.
      tcp.expires_after(milliseconds(options_.body_timeout_ms));
      co_await bhttp::async_read(stream, buffer, parser, asio::redirect_error(kUseAwaitable, ec));
      if (ec == bhttp::error::body_limit) {  // chunked: the size shows only while reading
        (void)co_await send(refuse_body(body_limit + 1), version, false);
        co_await drain_and_close(stream);
        co_return;
      }
      if (ec) {
        if (ec.category() == bhttp::make_error_code(bhttp::error::bad_version).category()) {
          (void)co_await send(error_response(400, "malformed HTTP request: " + ec.message()),
                              version, false);
        }
        break;
      }
    }
    // The request is all in: from here the server works and the client
    // waits, so the connection may no longer be evicted (admission.h).
    // Evicted just now: what was read is not handled.
    if (conn.evicted) break;
    conn.busy = true;
    admission_.busy(admitted.id);
    bhttp::request<bhttp::string_body>& req = parser.get();
    const bool keep_alive = req.keep_alive();

    Request r;
    r.method = std::string(req.method_string());
    r.target = std::string(req.target());
    r.body = std::move(req.body());  // moved, not copied: the budget counts it once
    r.forwarded = forwarded;
    if (auto it = req.find(kIdempotencyKeyHeader); it != req.end()) r.idempotency_key = std::string(it->value());
    if (auto it = req.find(bhttp::field::authorization); it != req.end()) r.authorization = std::string(it->value());
    if (auto it = req.find(auth::kForwardedCallerHeader); it != req.end()) r.forwarded_caller = std::string(it->value());
    r.client_cert_cn = conn.cert_cn;
    // The API and the Node bound their own waiting (commit timeout), so no
    // stream deadline runs meanwhile.
    tcp.expires_never();
    if (r.method == "POST" &&
        etcd_gateway_path(r.target.substr(0, r.target.find('?'))) == "/v3/watch") {
      co_await serve_watch(stream, r, version);
      break;
    }
    if (r.method == "POST" && etcd_gateway_path(r.target.substr(0, r.target.find('?'))) == kEtcdObservePath) {
      co_await serve_observe(stream, r, version);
      break;
    }
    if (r.method == "POST" &&
        etcd_gateway_path(r.target.substr(0, r.target.find('?'))) == "/v3/maintenance/snapshot") {
      co_await serve_snapshot(stream, r, version);
      break;
    }
    Outcome outcome = co_await from_callback<Outcome>(
        [this, &r](Reply reply) { api_.handle(r, std::move(reply)); });
    Response response;
    if (auto* f = std::get_if<Forward>(&outcome)) {
      response = co_await forward(*f, req.method(), r);
      if (f->then) {
        Outcome after = co_await from_callback<Outcome>(
            [&f, &response](Reply reply) { f->then(std::move(response), std::move(reply)); });
        // Forward::then answers with a Response; a second forward is not a thing.
        response = std::holds_alternative<Response>(after)
                       ? std::move(std::get<Response>(after))
                       : error_response(500, "consensuskv: a forwarded answer was forwarded again");
      }
    } else {
      response = std::move(std::get<Response>(outcome));
    }
    if (!co_await send(response, version, keep_alive)) break;
  }
  co_await finish(stream);
}

asio::awaitable<Response> HttpServer::Impl::forward(const Forward& f, bhttp::verb method,
                                                    const Request& r) {
  // Each forward holds a connection to the leader, which reserves only so
  // many slots for members (admission.h): beyond that, refuse here.
  const int before = forwards_in_flight_.fetch_add(1);
  struct InFlight {
    std::atomic<int>& n;
    ~InFlight() { --n; }
  } in_flight{forwards_in_flight_};
  if (before >= kMaxForwardsInFlight) {
    co_return error_response(503, "too many requests are being forwarded to the leader (limit " +
                                      std::to_string(kMaxForwardsInFlight) + "); retry");
  }
  // The leader's API address comes from the replicated membership, so this
  // works for any hosts and ports (the reference rewrote ":5000" to ":8000").
  const uint64_t max_reply_bytes =
      kJsonEscapeFactor * options_.max_body_bytes + kUpstreamReplyOverheadBytes;
  // A local, not a temporary in the co_await expression: GCC 12 destroys a
  // conditional's temporary there twice (a double free seen in the test).
  std::string claim;
  if (options_.auth != nullptr) claim = options_.auth->forward_claim(gateway_credentials(r));
  auto up = co_await fetch(f.api_address, method, r.target, r.body, true,
                           milliseconds(f.timeout_ms), max_reply_bytes, source_address_,
                           client_tls(), &upstreams_, r.idempotency_key, r.authorization, claim);
  if (!up.is_ok()) {
    if (up.status().code() == StatusCode::kTimeout) {
      co_return error_response(504,
                               "forwarded to the leader at " + f.api_address +
                                   " but got no answer; outcome unknown: " + up.status().message());
    }
    co_return error_response(
        503, "the leader at " + f.api_address + " is unreachable; retry: " + up.status().message());
  }
  if (up->status == 421) {
    // The node we took for the leader is not (any more): a leader change is under way.
    co_return error_response(503, "leadership is changing; retry");
  }
  Response answer;
  answer.status = up->status;
  answer.body = std::move(up->body);
  if (!up->retry_after.empty()) answer.headers.emplace_back("Retry-After", up->retry_after);
  answer.headers.emplace_back("X-Ckv-Leader", f.api_address);
  co_return answer;
}

std::string HttpServer::Impl::join_target() const {
  return "/join?peerAddress=" + url_encode(self_.raft_address) +
         "&apiAddress=" + url_encode(self_.api_address) +
         (self_.grpc_address.empty() ? "" : "&grpcAddress=" + url_encode(self_.grpc_address)) +
         "&id=" + url_encode(self_.name);
}

void HttpServer::Impl::fetch_peer_status(const node::MemberInfo& peer,
                                         std::function<void(Result<node::PeerView>)> done) {
  if (stopping_) return done(Status(StatusCode::kUnavailable, "stopping"));
  asio::co_spawn(ioc_, peer_status_once(peer.api_address, std::move(done)), asio::detached);
}

asio::awaitable<void> HttpServer::Impl::peer_status_once(std::string address,
                                                         std::function<void(Result<node::PeerView>)> done) {
  auto up = co_await fetch(address, bhttp::verb::get, "/status", "", false, milliseconds(kPeerStatusTimeoutMs),
                           kMaxJoinReplyBytes, source_address_, client_tls());
  if (!up.is_ok()) {
    done(up.status());
    co_return;
  }
  std::optional<node::PeerView> view = up->status == 200 ? parse_status_reply(up->body) : std::nullopt;
  if (!view) {
    done(Status(StatusCode::kCorrupt, address + "/status: not a member's status"));
    co_return;
  }
  done(std::move(*view));
}

void HttpServer::Impl::register_self(const node::MemberInfo& leader) {
  if (stopping_ || leader.api_address.empty() || registering_.exchange(true)) return;
  asio::co_spawn(ioc_, register_once(leader.api_address), asio::detached);
}

asio::awaitable<void> HttpServer::Impl::register_once(std::string leader_api_address) {
  auto up = co_await fetch(leader_api_address, bhttp::verb::post, join_target(), "", false,
                           milliseconds(options_.join_timeout_ms + 2000), kMaxJoinReplyBytes,
                           source_address_, client_tls(), nullptr, std::nullopt, join_authorization());
  if (up.is_ok() && up->status == 200) {
    spdlog::info("registered API address {} with the leader at {}", self_.api_address,
                 leader_api_address);
    register_failures_ = 0;
  } else if (register_failures_++ % 30 ==
             0) {  // the Node retries every second: do not flood the log
    spdlog::warn("registering API address {} with the leader at {} failed (will retry): {}",
                 self_.api_address, leader_api_address,
                 up.is_ok() ? "HTTP " + std::to_string(up->status) + " " + up->body
                            : up.status().to_string());
  }
  registering_ = false;
}

asio::awaitable<void> HttpServer::Impl::join_loop(std::string target) {
  asio::steady_timer timer(ioc_);
  milliseconds backoff(200);
  for (int attempt = 1;; ++attempt) {
    if (stopping_) co_return;
    if (is_voter(node_.status())) {
      spdlog::info("already a voting member; not joining via {}", target);
      co_return;
    }
    auto up = co_await fetch(target, bhttp::verb::post, join_target(), "", false,
                             milliseconds(options_.join_timeout_ms + 2000), kMaxJoinReplyBytes,
                             source_address_, client_tls(), nullptr, std::nullopt, join_authorization());
    if (up.is_ok() && up->status == 200) {
      spdlog::info("joined the cluster via {}", target);
      co_return;
    }
    spdlog::warn("join via {} failed (attempt {}): {}; retrying in {} ms", target, attempt,
                 up.is_ok() ? "HTTP " + std::to_string(up->status) + " " + up->body
                            : up.status().to_string(),
                 backoff.count());
    beast::error_code ec;
    timer.expires_after(backoff);
    co_await timer.async_wait(asio::redirect_error(kUseAwaitable, ec));
    backoff = std::min(backoff * 2, milliseconds(5000));
  }
}

HttpServer::HttpServer(node::Node& node, node::MemberInfo self, ServerOptions options)
    : impl_(std::make_unique<Impl>(node, std::move(self), std::move(options))) {}
HttpServer::~HttpServer() { impl_->stop(); }
Status HttpServer::start() { return impl_->start(); }
void HttpServer::join_via(std::string member_api_address) {
  impl_->join_via(std::move(member_api_address));
}
void HttpServer::register_self(const node::MemberInfo& leader) { impl_->register_self(leader); }
void HttpServer::fetch_peer_status(const node::MemberInfo& peer, std::function<void(Result<node::PeerView>)> done) {
  impl_->fetch_peer_status(peer, std::move(done));
}
void HttpServer::stop() { impl_->stop(); }

}  // namespace ckv::http
