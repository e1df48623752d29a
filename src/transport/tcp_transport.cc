// Boost.Asio implementation of TcpTransport: accept loop, per-peer writer coroutines with backoff, frame reader.
#include "transport/tcp_transport.h"

// <utility> (below) must precede Asio: Boost 1.74's awaitable.hpp uses
// std::exchange without including it (DESIGN.md, platform notes).
#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include "common/bytes.h"
#include "transport/message_codec.h"

namespace ckv::transport {

namespace asio = boost::asio;
namespace ip = boost::asio::ip;
using boost::system::error_code;
using std::chrono::milliseconds;

namespace {

// The address outbound streams leave from: the host of our own raft address
// when it is a specific IP. Without this every stream on one machine leaves
// from 127.0.0.1 whatever address a node listens on, so a firewall rule
// that cuts one node's address off (a partition test, a real network
// policy) would not apply to what it sends.
std::optional<ip::address> source_address_for(const std::string& listen_address) {
  auto hp = parse_host_port(listen_address);
  if (!hp.is_ok() || hp->host.empty()) return std::nullopt;
  error_code ec;
  const ip::address a = ip::make_address(hp->host, ec);
  if (ec || a.is_unspecified()) return std::nullopt;
  return a;
}

// Best effort: a source address we cannot bind (say, a raft address behind
// NAT) leaves the choice to the kernel, as before.
void bind_source_address(ip::tcp::socket& socket, const ip::tcp::endpoint& destination,
                         const std::optional<ip::address>& source) {
  if (!source || destination.address().is_v4() != source->is_v4()) return;
  error_code ec;
  socket.bind(ip::tcp::endpoint(*source, 0), ec);
  if (ec) spdlog::debug("cannot send from {}: {}", source->to_string(), ec.message());
}

// Hello frame: first frame of every stream. The magic makes a stray client
// (say, curl at the raft port) fail fast; the receiver id catches a stale
// address that now belongs to another node. The sender's own raft address
// lets the receiver answer a node it has never heard of: a node that waits
// to be added knows no members, yet must answer the leader that probes it.
constexpr uint32_t kHelloMagic = 0x54564b43;  // "CKVT" little-endian
constexpr uint8_t kHelloVersion = 2;
constexpr size_t kHelloFixedBytes = 4 + 1 + 8 + 8 + 2;
constexpr size_t kMaxHelloAddressBytes = 255;
// Inbound read sizes: read at least kReadChunkBytes at a time so many small
// frames arrive per system call, and grow a buffer towards a large frame at
// most kMaxReadGrowBytes per read, so memory follows bytes actually received
// rather than a length a peer merely claims.
constexpr size_t kReadChunkBytes = size_t{64} << 10;
constexpr size_t kMaxReadGrowBytes = size_t{1} << 20;
// After accept() fails for a reason other than shutdown (e.g. out of file
// descriptors), pause instead of spinning.
constexpr milliseconds kAcceptRetryDelay{100};
// An outbound stream that ends sooner than this counts as a failed connect
// (see Peer::run): it keeps the backoff growing instead of resetting it.
constexpr milliseconds kMinStableStream{1000};

std::string hello_frame(raft::NodeId from, raft::NodeId to, const std::string& from_address) {
  std::string payload;
  put_u32le(payload, kHelloMagic);
  put_u8(payload, kHelloVersion);
  put_u64le(payload, from);
  put_u64le(payload, to);
  const std::string_view addr = std::string_view(from_address).substr(0, kMaxHelloAddressBytes);
  payload.push_back(static_cast<char>(addr.size() & 0xff));
  payload.push_back(static_cast<char>(addr.size() >> 8));
  payload += addr;
  std::string out;
  Status s = append_frame(payload, out);
  (void)s;  // a hello is far below kMaxFrameBytes
  return out;
}

uint32_t frame_length(std::string_view header) {
  ByteReader r(header);
  uint32_t len = 0;
  (void)r.u32le(len);
  return len;
}

}  // namespace

Result<HostPort> parse_host_port(const std::string& address) {
  auto bad = [&](const char* why) {
    return Status(StatusCode::kInvalid, "bad address '" + address + "': " + why);
  };
  HostPort hp;
  std::string_view port;
  if (!address.empty() && address.front() == '[') {
    const size_t close = address.find(']');
    if (close == std::string::npos) return bad("missing ']'");
    if (close + 1 >= address.size() || address[close + 1] != ':')
      return bad("expected ':' after ']'");
    hp.host = address.substr(1, close - 1);
    port = std::string_view{address}.substr(close + 2);
  } else {
    const size_t colon = address.rfind(':');
    if (colon == std::string::npos) return bad("expected host:port");
    hp.host = address.substr(0, colon);
    if (hp.host.find(':') != std::string::npos) return bad("IPv6 hosts need brackets");
    port = std::string_view{address}.substr(colon + 1);
  }
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value > 65535) {
    return bad("port must be a number from 0 to 65535");
  }
  hp.port = static_cast<uint16_t>(value);
  return hp;
}

class TcpTransport::Impl {
 public:
  struct Counters {
    std::atomic<uint64_t> sent{0}, dropped{0}, received{0}, rejected{0}, connects{0},
        connect_failures{0};
  };

  // One outbound peer. The queue fields are shared with sending threads under
  // mu_; everything else belongs to the I/O thread.
  class Peer : public std::enable_shared_from_this<Peer> {
   public:
    Peer(Impl& owner, raft::NodeId id, std::string address)
        : owner_(owner),
          id_(id),
          address_(std::move(address)),
          resolver_(*owner.io_),
          socket_(*owner.io_),
          wake_(*owner.io_),
          backoff_timer_(*owner.io_),
          connect_timer_(*owner.io_) {}

    const std::string& address() const { return address_; }

    // Any thread. Returns false (caller counts the drop) when the queue is
    // full or the peer is unreachable; never waits for the network.
    bool enqueue(std::string frame) {
      bool wake = false;
      {
        std::lock_guard lock(mu_);
        if (!accepting_) return false;
        const TcpTransportOptions& o = owner_.opts_;
        if (queue_.size() >= o.max_queue_messages ||
            (!queue_.empty() && queued_bytes_ + frame.size() > o.max_queue_bytes)) {
          return false;
        }
        queued_bytes_ += frame.size();
        queue_.push_back(std::move(frame));
        wake = std::exchange(writer_waiting_, false);
      }
      // Only the I/O thread may touch the timer; one post per wake-up, not per message.
      if (wake) asio::post(*owner_.io_, [self = shared_from_this()] { self->wake_.cancel(); });
      return true;
    }

    // Any thread: stop admitting messages and drop what is queued.
    void disable() {
      std::lock_guard lock(mu_);
      accepting_ = false;
      drop_queue_locked();
    }

    // I/O thread: end the peer for good; its coroutines see closed_ and exit.
    void close() {
      closed_ = true;
      disable();
      ++generation_;
      error_code ignored;
      socket_.close(ignored);
      resolver_.cancel();
      wake_.cancel();
      backoff_timer_.cancel();
      connect_timer_.cancel();
    }

    // Connect, write until the stream breaks, back off, repeat (I/O thread).
    static asio::awaitable<void> run(std::shared_ptr<Peer> self) {
      auto hp = parse_host_port(self->address_);
      if (!hp.is_ok()) {
        spdlog::error("raft peer {}: {}; messages to it are dropped", self->id_,
                      hp.status().message());
        self->disable();
        co_return;
      }
      // Go's net.Dial treats ":port" as the local host; so do we.
      const std::string host = hp->host.empty() ? "127.0.0.1" : hp->host;
      const std::string port = std::to_string(hp->port);
      const TcpTransportOptions& o = self->owner_.opts_;
      milliseconds backoff{o.backoff_initial_ms};
      bool reported_down = false;
      while (!self->closed_) {
        error_code ec;
        auto endpoints =
            co_await self->resolver_.async_resolve(host, port, ip::tcp::resolver::numeric_service,
                                                   asio::redirect_error(asio::use_awaitable, ec));
        if (self->closed_) break;
        if (!ec) {
          const uint64_t attempt = ++self->generation_;
          const auto deadline =
              std::chrono::steady_clock::now() + milliseconds(o.connect_timeout_ms);
          self->connect_timer_.expires_at(deadline);
          self->connect_timer_.async_wait([self, attempt](error_code tec) {
            // Closing the socket makes the pending connect fail with operation_aborted.
            if (!tec && attempt == self->generation_) {
              error_code ignored;
              self->socket_.close(ignored);
            }
          });
          ec = asio::error::host_not_found;
          for (const auto& entry : endpoints) {
            if (self->closed_) break;
            // The timer closes the socket once; if it fired between two
            // endpoints, it aborted nothing, so stop here rather than
            // start a connect that nothing would time out.
            if (std::chrono::steady_clock::now() >= deadline) {
              ec = asio::error::timed_out;
              break;
            }
            error_code ignored;
            self->socket_.close(ignored);
            self->socket_.open(entry.endpoint().protocol(), ec);
            if (ec) continue;
            bind_source_address(self->socket_, entry.endpoint(), self->owner_.source_address_);
            co_await self->socket_.async_connect(entry.endpoint(),
                                                 asio::redirect_error(asio::use_awaitable, ec));
            if (!ec || ec == asio::error::operation_aborted) break;
          }
          self->connect_timer_.cancel();
        }
        if (self->closed_) break;
        std::string failure;
        if (ec) {
          failure = ec.message();
        } else {
          ++self->owner_.counters_.connects;
          if (reported_down) {
            spdlog::info("raft peer {} at {} connected", self->id_, self->address_);
          }
          reported_down = false;
          error_code ignored;
          self->socket_.set_option(ip::tcp::no_delay(true), ignored);
          // Unacknowledged data for this long ends the stream, and we
          // reconnect. Without it a stream that lived through a partition
          // waits out TCP's exponential retransmission backoff (seconds to
          // minutes) after the network heals; heartbeats keep data in flight,
          // so a healthy stream never idles into it.
          const unsigned user_timeout_ms = o.user_timeout_ms;
          ::setsockopt(self->socket_.native_handle(), IPPROTO_TCP, TCP_USER_TIMEOUT,
                       &user_timeout_ms, sizeof(user_timeout_ms));
          const uint64_t conn = ++self->generation_;
          asio::co_spawn(*self->owner_.io_, watch(self, conn), asio::detached);
          const auto up_since = std::chrono::steady_clock::now();
          co_await write_loop(self);
          // Invalidate the watcher of the stream that just ended before reusing socket_.
          ++self->generation_;
          self->socket_.close(ignored);
          if (self->closed_) break;
          const auto lived =
              std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - up_since);
          if (lived >= kMinStableStream) {
            // A stream that worked: reconnect at once, starting the backoff afresh.
            backoff = milliseconds(o.backoff_initial_ms);
            continue;
          }
          // A peer that accepts and then closes at once (it rejected our hello,
          // or is shutting down) gets the same backoff as a refused connect,
          // not a reconnect loop.
          failure = "stream closed after " + std::to_string(lived.count()) + " ms";
        }
        ++self->owner_.counters_.connect_failures;
        if (!reported_down) {
          spdlog::warn("raft peer {} at {} unreachable: {}; retrying with backoff up to {} ms",
                       self->id_, self->address_, failure, o.backoff_max_ms);
          reported_down = true;
        }
        error_code ignored;
        self->socket_.close(ignored);
        // Unreachable: drop instead of queueing stale messages behind a dead
        // link; Raft resends whatever still matters once we reconnect.
        {
          std::lock_guard lock(self->mu_);
          self->accepting_ = false;
          self->drop_queue_locked();
        }
        self->backoff_timer_.expires_after(backoff);
        co_await self->backoff_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        backoff = std::min(backoff * 2, milliseconds(o.backoff_max_ms));
        if (self->closed_) break;
        std::lock_guard lock(self->mu_);
        self->accepting_ = true;
      }
    }

   private:
    // Writes the hello, then queued frames in batches, until the stream
    // breaks or the peer is closed.
    static asio::awaitable<void> write_loop(std::shared_ptr<Peer> self) {
      const TcpTransportOptions& o = self->owner_.opts_;
      std::vector<std::string> batch;
      std::vector<asio::const_buffer> buffers;
      batch.push_back(hello_frame(self->owner_.local_id_, self->id_, self->owner_.listen_address_));
      size_t hello_in_batch = 1;
      while (!self->closed_ && self->socket_.is_open()) {
        if (batch.empty()) {
          std::lock_guard lock(self->mu_);
          size_t bytes = 0;
          while (!self->queue_.empty() && (batch.empty() || bytes < o.max_write_batch_bytes)) {
            bytes += self->queue_.front().size();
            batch.push_back(std::move(self->queue_.front()));
            self->queue_.pop_front();
          }
          self->queued_bytes_ -= bytes;
          // Set under the same lock as the emptiness check, and the wait below
          // starts before any other handler runs, so a wake-up cannot be lost.
          if (batch.empty()) self->writer_waiting_ = true;
        }
        if (batch.empty()) {
          error_code ec;
          self->wake_.expires_at(asio::steady_timer::time_point::max());
          co_await self->wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
          continue;
        }
        buffers.clear();
        for (const std::string& f : batch) buffers.push_back(asio::buffer(f));
        error_code ec;
        co_await asio::async_write(self->socket_, buffers,
                                   asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
          self->owner_.counters_.dropped += batch.size() - hello_in_batch;
          break;
        }
        self->owner_.counters_.sent += batch.size() - hello_in_batch;
        hello_in_batch = 0;
        batch.clear();
      }
      std::lock_guard lock(self->mu_);
      self->writer_waiting_ = false;
    }

    // The receiver never writes back, so a completed read means the stream
    // ended (EOF or reset). Noticing that here, not at the next write, lets an
    // idle peer reconnect before Raft needs it.
    static asio::awaitable<void> watch(std::shared_ptr<Peer> self, uint64_t conn) {
      char buf[256];
      error_code ec;
      while (!ec) {
        co_await self->socket_.async_read_some(asio::buffer(buf),
                                               asio::redirect_error(asio::use_awaitable, ec));
      }
      if (conn == self->generation_) {
        error_code ignored;
        self->socket_.close(ignored);
        self->wake_.cancel();
      }
    }

    void drop_queue_locked() {
      owner_.counters_.dropped += queue_.size();
      queue_.clear();
      queued_bytes_ = 0;
    }

    Impl& owner_;
    const raft::NodeId id_;
    const std::string address_;
    ip::tcp::resolver resolver_;
    ip::tcp::socket socket_;
    asio::steady_timer wake_;  // the idle writer waits on it; cancel() wakes it
    asio::steady_timer backoff_timer_;
    asio::steady_timer connect_timer_;
    uint64_t generation_ = 0;  // bumps per connect attempt and stream end; stale handlers compare
    std::atomic<bool> closed_{false};

    std::mutex mu_;
    std::deque<std::string> queue_;  // complete frames, in send order
    size_t queued_bytes_ = 0;
    bool accepting_ = true;        // false while unreachable or closed: enqueue drops
    bool writer_waiting_ = false;  // the writer is parked on wake_
  };

  Impl(raft::NodeId local_id, std::string listen_address, TcpTransportOptions options)
      : local_id_(local_id),
        listen_address_(std::move(listen_address)),
        source_address_(source_address_for(listen_address_)),
        opts_(options),
        io_(std::make_unique<asio::io_context>(1)),
        acceptor_(std::make_unique<ip::tcp::acceptor>(*io_)) {}

  ~Impl() { stop(); }

  Status listen() {
    std::lock_guard lock(mu_);
    return listen_locked();
  }

  Status listen_status() const {
    std::lock_guard lock(mu_);
    return listen_status_;
  }

  uint16_t listen_port() const { return listen_port_.load(); }

  void start(Handler handler) {
    std::lock_guard lock(mu_);
    if (started_ || stopped_) return;
    started_ = true;
    handler_ = std::move(handler);
    if (!listening_) {
      Status s = listen_locked();
      if (!s.is_ok()) spdlog::error("raft transport cannot listen: {}", s.to_string());
    }
    if (listening_) asio::co_spawn(*io_, accept_loop(), asio::detached);
    work_.emplace(io_->get_executor());
    thread_ = std::thread([this] { io_->run(); });
  }

  void stop() {
    {
      std::lock_guard lock(mu_);
      if (stopped_) return;
      stopped_ = true;
      for (auto& [id, peer] : peers_) peer->disable();
    }
    if (thread_.joinable()) {
      // Close on the I/O thread (sockets are not thread-safe), then stop the
      // loop without waiting for the aborted operations to finish: their
      // coroutine frames are destroyed with the io_context below.
      asio::post(*io_, [this] {
        close_all();
        io_->stop();
      });
      thread_.join();
    } else {
      close_all();
    }
    std::map<raft::NodeId, std::shared_ptr<Peer>> peers;
    {
      std::lock_guard lock(mu_);
      peers.swap(peers_);
    }
    peers.clear();
    inbound_.clear();
    acceptor_.reset();
    work_.reset();
    // Destroys pending handlers (coroutine frames), releasing the last sockets
    // now rather than at destruction.
    io_.reset();
  }

  void set_peer(raft::NodeId id, const std::string& address) {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    auto it = peers_.find(id);
    if (it != peers_.end()) {
      if (it->second->address() == address) return;
      retire_locked(it->second);
    }
    auto peer = std::make_shared<Peer>(*this, id, address);
    peers_[id] = peer;
    asio::co_spawn(*io_, Peer::run(peer), asio::detached);
  }

  void remove_peer(raft::NodeId id) {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    auto it = peers_.find(id);
    if (it == peers_.end()) return;
    retire_locked(it->second);
    peers_.erase(it);
  }

  void send(raft::Message m) {
    // Encode before taking the lock: the Raft thread pays for it either way,
    // and other senders need not wait on a 1 MiB copy.
    auto frame = encode_message_frame(m);
    if (!frame.is_ok()) {
      ++counters_.dropped;
      spdlog::error("raft message {} to {} dropped: {}", raft::to_string(m.type), m.to,
                    frame.status().message());
      return;
    }
    // Held while enqueueing so that stop() cannot destroy io_ under a wake-up post.
    std::lock_guard lock(mu_);
    auto it = stopped_ ? peers_.end() : peers_.find(m.to);
    if (it == peers_.end() || !it->second->enqueue(std::move(frame).value())) ++counters_.dropped;
  }

  TcpTransportStats stats() const {
    TcpTransportStats s;
    s.messages_sent = counters_.sent.load();
    s.messages_dropped = counters_.dropped.load();
    s.messages_received = counters_.received.load();
    s.streams_rejected = counters_.rejected.load();
    s.connects = counters_.connects.load();
    s.connect_failures = counters_.connect_failures.load();
    return s;
  }

 private:
  // One accepted stream (I/O thread only).
  struct Inbound {
    explicit Inbound(asio::io_context& io) : socket(io) {}
    ip::tcp::socket socket;
    raft::NodeId from = raft::kNoNode;  // known once the hello is read
  };

  Status listen_locked() {
    if (listening_) return Status::ok();
    if (stopped_) return Status(StatusCode::kUnavailable, "raft transport is stopped");
    listen_status_ = bind_and_listen();
    listening_ = listen_status_.is_ok();
    return listen_status_;
  }

  Status bind_and_listen() {
    auto hp = parse_host_port(listen_address_);
    if (!hp.is_ok()) return hp.status();
    error_code ec;
    ip::tcp::resolver resolver(*io_);
    // Go's net.Listen treats ":port" as every interface; so do we.
    const std::string host = hp->host.empty() ? "0.0.0.0" : hp->host;
    auto endpoints =
        resolver.resolve(host, std::to_string(hp->port),
                         ip::tcp::resolver::passive | ip::tcp::resolver::numeric_service, ec);
    if (ec || endpoints.empty()) {
      return Status(StatusCode::kInvalid,
                    "cannot resolve raft address " + listen_address_ + ": " + ec.message());
    }
    const ip::tcp::endpoint ep = endpoints.begin()->endpoint();
    auto fail = [&](const char* what) {
      error_code ignored;
      acceptor_->close(ignored);
      return Status(StatusCode::kIo,
                    std::string(what) + " raft address " + listen_address_ + ": " + ec.message());
    };
    acceptor_->open(ep.protocol(), ec);
    if (ec) return fail("cannot open");
    // A restarted node must rebind its port while old streams sit in TIME_WAIT.
    acceptor_->set_option(ip::tcp::acceptor::reuse_address(true), ec);
    if (ec) return fail("cannot set up");
    acceptor_->bind(ep, ec);
    if (ec) return fail("cannot bind");
    acceptor_->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return fail("cannot listen on");
    listen_port_ = acceptor_->local_endpoint(ec).port();
    return Status::ok();
  }

  asio::awaitable<void> accept_loop() {
    asio::steady_timer pause(*io_);
    while (!closing_) {
      auto conn = std::make_shared<Inbound>(*io_);
      error_code ec;
      co_await acceptor_->async_accept(conn->socket, asio::redirect_error(asio::use_awaitable, ec));
      if (closing_) break;
      if (ec) {
        spdlog::warn("raft transport accept failed: {}", ec.message());
        pause.expires_after(kAcceptRetryDelay);
        co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        continue;
      }
      if (inbound_.size() >= opts_.max_inbound_connections) {
        ++counters_.rejected;
        spdlog::warn("raft transport: over {} inbound streams; closing a new one",
                     opts_.max_inbound_connections);
        conn->socket.close(ec);
        continue;
      }
      inbound_.insert(conn);
      asio::co_spawn(*io_, read_loop(conn), asio::detached);
    }
  }

  // Reads frames off one inbound stream and hands decoded messages to the handler.
  asio::awaitable<void> read_loop(std::shared_ptr<Inbound> conn) {
    std::string buf;  // bytes received and not yet consumed
    bool hello_seen = false;
    std::string reject_reason;
    error_code ec;
    while (!closing_ && reject_reason.empty()) {
      size_t consumed = 0;
      while (reject_reason.empty()) {
        const std::string_view rest = std::string_view{buf}.substr(consumed);
        // Before the hello only a hello-sized frame is acceptable: an
        // unidentified stream cannot make us buffer a large payload.
        if (!hello_seen && rest.size() >= 4 &&
            (frame_length(rest) < kHelloFixedBytes || frame_length(rest) > kHelloFixedBytes + kMaxHelloAddressBytes)) {
          reject_reason = "first frame is not a hello";
          break;
        }
        auto frame = next_frame(rest);
        if (!frame.is_ok()) {
          reject_reason = frame.status().message();
          break;
        }
        if (!frame.value()) break;  // need more bytes
        const std::string_view payload = frame.value()->payload;
        consumed += frame.value()->frame_bytes;
        if (!hello_seen) {
          reject_reason = check_hello(payload, *conn);
          hello_seen = true;
          if (reject_reason.empty()) close_older_streams_from(*conn);
          continue;
        }
        auto m = decode_message(payload);
        if (!m.is_ok()) {
          reject_reason = m.status().message();
          break;
        }
        if (local_id_ != raft::kNoNode && m->to != local_id_) {
          ++counters_.dropped;  // addressed to whoever had this address before us
          continue;
        }
        ++counters_.received;
        handler_(std::move(m).value());
      }
      if (!reject_reason.empty()) break;
      buf.erase(0, consumed);

      size_t want = kReadChunkBytes;
      if (buf.size() >= kFrameHeaderBytes) {
        const size_t frame_total = kFrameHeaderBytes + frame_length(buf);
        want = std::clamp(frame_total - buf.size(), kReadChunkBytes, kMaxReadGrowBytes);
      }
      const size_t old_size = buf.size();
      buf.resize(old_size + want);
      const size_t n = co_await conn->socket.async_read_some(
          asio::buffer(buf.data() + old_size, want), asio::redirect_error(asio::use_awaitable, ec));
      buf.resize(old_size + n);
      if (ec) break;
    }
    if (!reject_reason.empty()) {
      ++counters_.rejected;
      error_code ignored;
      auto remote = conn->socket.remote_endpoint(ignored);
      spdlog::warn("raft transport: closing stream from {}:{}: {}", remote.address().to_string(),
                   remote.port(), reject_reason);
    }
    error_code ignored;
    conn->socket.close(ignored);
    inbound_.erase(conn);
  }

  // Returns why the hello is unacceptable, or "" if it is fine. A sender we
  // have no route to yet becomes a peer at the address it advertises, so
  // our answers reach it (set_peer from the membership takes over later).
  std::string check_hello(std::string_view payload, Inbound& conn) {
    ByteReader r(payload);
    uint32_t magic = 0;
    uint8_t version = 0;
    uint64_t from = 0;
    uint64_t to = 0;
    uint8_t len_lo = 0;
    uint8_t len_hi = 0;
    std::string from_address;
    if (!r.u32le(magic) || magic != kHelloMagic) return "not a consensuskv raft stream";
    if (!r.u8(version) || version != kHelloVersion) return "unknown stream version";
    if (!r.u64le(from) || !r.u64le(to) || !r.u8(len_lo) || !r.u8(len_hi) ||
        !r.bytes(size_t{len_lo} | (size_t{len_hi} << 8), from_address) || !r.at_end()) {
      return "malformed hello";
    }
    if (local_id_ != raft::kNoNode && to != local_id_) {
      return "hello from node " + std::to_string(from) + " is addressed to node " +
             std::to_string(to) + ", this is node " + std::to_string(local_id_);
    }
    conn.from = from;
    if (from != raft::kNoNode && from != local_id_ && !from_address.empty()) {
      std::lock_guard lock(mu_);
      if (!stopped_ && peers_.find(from) == peers_.end()) {
        auto peer = std::make_shared<Peer>(*this, from, from_address);
        peers_[from] = peer;
        asio::co_spawn(*io_, Peer::run(peer), asio::detached);
      }
    }
    return "";
  }

  // A sender keeps one stream to us, so a new stream from it means it gave up
  // on the old one. After a partition the old one may never see a FIN (it
  // was lost with the partition), and we only read from it, so nothing
  // would ever time it out: close it, or such streams pile up to the limit.
  void close_older_streams_from(const Inbound& fresh) {
    if (fresh.from == raft::kNoNode) return;
    for (const auto& conn : inbound_) {
      if (conn.get() != &fresh && conn->from == fresh.from) {
        error_code ignored;
        conn->socket.close(ignored);
      }
    }
  }

  void retire_locked(const std::shared_ptr<Peer>& peer) {
    peer->disable();
    asio::post(*io_, [peer] { peer->close(); });
  }

  // I/O thread (or no thread at all): closes every socket so peers see EOF now.
  void close_all() {
    closing_ = true;
    error_code ignored;
    acceptor_->close(ignored);
    for (const auto& conn : inbound_) conn->socket.close(ignored);
    std::vector<std::shared_ptr<Peer>> peers;
    {
      std::lock_guard lock(mu_);
      for (auto& [id, peer] : peers_) peers.push_back(peer);
    }
    for (auto& peer : peers) peer->close();
  }

  const raft::NodeId local_id_;
  const std::string listen_address_;
  const std::optional<ip::address> source_address_;
  const TcpTransportOptions opts_;
  Counters counters_;

  // Declared before everything holding sockets or timers, so destroyed last.
  std::unique_ptr<asio::io_context> io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::unique_ptr<ip::tcp::acceptor> acceptor_;
  std::set<std::shared_ptr<Inbound>> inbound_;  // I/O thread only
  std::atomic<bool> closing_{false};
  std::atomic<uint16_t> listen_port_{0};
  Handler handler_;  // set by start() before the I/O thread exists, then read-only

  mutable std::mutex mu_;  // guards what follows; taken before any Peer::mu_
  std::map<raft::NodeId, std::shared_ptr<Peer>> peers_;
  Status listen_status_;
  bool listening_ = false;
  bool started_ = false;
  bool stopped_ = false;
  std::thread thread_;
};

TcpTransport::TcpTransport(raft::NodeId local_id, std::string listen_address,
                           TcpTransportOptions options)
    : impl_(std::make_unique<Impl>(local_id, std::move(listen_address), options)) {}

TcpTransport::~TcpTransport() { stop(); }

Status TcpTransport::listen() { return impl_->listen(); }
Status TcpTransport::listen_status() const { return impl_->listen_status(); }
uint16_t TcpTransport::listen_port() const { return impl_->listen_port(); }
void TcpTransport::start(Handler handler) { impl_->start(std::move(handler)); }
void TcpTransport::stop() { impl_->stop(); }
void TcpTransport::set_peer(raft::NodeId id, const std::string& address) {
  impl_->set_peer(id, address);
}
void TcpTransport::remove_peer(raft::NodeId id) { impl_->remove_peer(id); }
void TcpTransport::send(raft::Message m) { impl_->send(std::move(m)); }
TcpTransportStats TcpTransport::stats() const { return impl_->stats(); }

}  // namespace ckv::transport
