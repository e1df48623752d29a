// Boost.Asio implementation of TcpTransport: accept loop, per-peer writer coroutines with backoff, frame reader, over plain or TLS streams.
#include "transport/tcp_transport.h"

// <utility> (below) must precede Asio: Boost 1.74's awaitable.hpp uses
// std::exchange without including it (DESIGN.md, platform notes).
#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
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
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "common/bytes.h"
#include "common/thread_name.h"
#include "metrics/instruments.h"
#include "tls/peer_cert.h"
#include "transport/message_codec.h"
#include "transport/raft_stream.h"
#include "transport/stream_codec.h"

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

// After accept() fails for a reason other than shutdown (e.g. out of file
// descriptors), pause instead of spinning.
constexpr milliseconds kAcceptRetryDelay{100};
// Frames one sendmsg of a direct write names at most (IOV_MAX is 1024); a
// Ready's messages to one peer rarely exceed it, and more take another call.
constexpr size_t kMaxDirectIovecs = 64;
// An outbound stream that ends sooner than this counts as a failed connect
// (see Peer::run): it keeps the backoff growing instead of resetting it.
constexpr milliseconds kMinStableStream{1000};
// Refusals (a stranger's hello, a wiped member, a full budget) are logged at
// most once per this interval and kind, with how many were not logged.
constexpr milliseconds kRefusalLogInterval{5000};

std::string endpoint_text(const ip::tcp::socket& socket) {
  error_code ec;
  const auto ep = socket.remote_endpoint(ec);
  if (ec) return "?";
  return ep.address().is_v6() ? "[" + ep.address().to_string() + "]:" + std::to_string(ep.port())
                              : ep.address().to_string() + ":" + std::to_string(ep.port());
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
  using Clock = std::chrono::steady_clock;

  struct Counters {
    std::atomic<uint64_t> sent{0}, dropped{0}, received{0}, rejected{0}, connects{0},
        connect_failures{0}, refused_connections{0}, hello_timeouts{0}, refused_senders{0},
        refused_incarnations{0}, refused_stream_cap{0}, budget_closes{0}, foreign_messages{0},
        probes_answered{0}, tls_failed{0}, certificates_refused{0}, clusters_refused{0}, socket_writes{0}, direct_writes{0};
  };

  // Logs refusals at most once per kRefusalLogInterval and kind, so that a
  // flood of hostile connections cannot flood the log too. Any thread.
  class RefusalLog {
   public:
    void warn(const std::string& kind, const std::string& text) {
      uint64_t suppressed = 0;
      {
        std::lock_guard lock(mu_);
        Entry& e = entries_[kind];
        const auto now = Clock::now();
        if (e.logged && now - e.last < kRefusalLogInterval) {
          ++e.suppressed;
          return;
        }
        e.logged = true;
        e.last = now;
        suppressed = std::exchange(e.suppressed, 0);
      }
      if (suppressed > 0) {
        spdlog::warn("raft transport: {} ({} more like it not logged)", text, suppressed);
      } else {
        spdlog::warn("raft transport: {}", text);
      }
    }

   private:
    struct Entry {
      bool logged = false;
      Clock::time_point last;
      uint64_t suppressed = 0;
    };
    std::mutex mu_;
    std::map<std::string, Entry> entries_;
  };

  // One outbound peer. The queue fields are shared with sending threads under
  // mu_; everything else belongs to the I/O thread.
  class Peer : public std::enable_shared_from_this<Peer> {
   public:
    Peer(Impl& owner, raft::NodeId id, std::string address, std::string incarnation)
        : owner_(owner),
          id_(id),
          address_(std::move(address)),
          incarnation_(std::move(incarnation)),
          resolver_(*owner.io_),
          wake_(*owner.io_),
          backoff_timer_(*owner.io_),
          connect_timer_(*owner.io_),
          reader_(kMaxFrameBytes) {}

    const std::string& address() const { return address_; }
    const std::string& incarnation() const { return incarnation_; }

    // Any thread. Sends or queues frames (complete, in send order) and
    // returns how many it refused (the caller counts the drops): all when the
    // peer is unreachable, else the tail that does not fit the queue's
    // limits. Never waits for the network. When the writer is parked, this
    // thread first writes what the socket takes now, every frame in one
    // sendmsg: a Ready's messages to one peer (a follower's forwarded
    // proposals, thesis §6.2) cost one system call, not one each. Only what
    // the socket did not take counts against the queue's limits, as when
    // each frame was offered alone.
    size_t enqueue(std::vector<std::string>& frames, size_t from, size_t to) {
      bool wake = false;
      size_t next = from;  // the first frame not sent whole
      {
        std::lock_guard lock(mu_);
        if (!accepting_) return to - from;
        bool partial = false;  // frames[next] was sent in part: the stream needs the rest, first
        if (writer_waiting_ && direct_fd_ >= 0 && from < to) {
          // The writer is parked, so the queue is empty and nothing else
          // writes to the socket: write here, sparing the I/O thread's
          // wake-up (two per replicated write: the append and its answer).
          size_t written = write_now_locked(frames, from, to);
          uint64_t sent_bytes = 0;
          while (next < to && written >= frames[next].size()) {
            written -= frames[next].size();
            sent_bytes += frames[next].size();
            ++next;
          }
          if (next > from) {
            owner_.counters_.sent += next - from;
            metrics::instruments().peers.sent(id_, next - from, sent_bytes);
          }
          if (next < to && written > 0) {
            frames[next].erase(0, written);
            partial = true;
          }
        }
        const TcpTransportOptions& o = owner_.opts_;
        size_t admitted = next;
        for (; admitted < to; ++admitted) {
          const size_t size = frames[admitted].size();
          const bool fits = queue_.size() < o.max_queue_messages &&
                            (queue_.empty() || queued_bytes_ + size <= o.max_queue_bytes);
          // One frame always fits an empty queue, so the rest of a frame
          // the socket took in part (the queue is empty then) is never dropped.
          if (!fits && !(partial && admitted == next)) break;
          queued_bytes_ += size;
          queue_.push_back(std::move(frames[admitted]));
        }
        if (partial) front_is_partial_ = true;
        if (admitted > next) wake = std::exchange(writer_waiting_, false);
        next = admitted;  // [next, to) is refused
      }
      // Only the I/O thread may touch the timer; one post per wake-up, not per message.
      if (wake) asio::post(*owner_.io_, [self = shared_from_this()] { self->wake_.cancel(); });
      return to - next;
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
      close_stream();
      resolver_.cancel();
      wake_.cancel();
      backoff_timer_.cancel();
      connect_timer_.cancel();
    }

    // Connect, exchange hellos, write until the stream breaks, back off,
    // repeat (I/O thread).
    static asio::awaitable<void> run(std::shared_ptr<Peer> self) {
      auto hp = parse_host_port(self->address_);
      if (!hp.is_ok() || !self->owner_.tls_status_.is_ok()) {
        spdlog::error("raft peer {}: {}; messages to it are dropped", self->id_,
                      (hp.is_ok() ? self->owner_.tls_status_ : hp.status()).message());
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
        error_code ec = co_await connect(self, host, port);
        if (self->closed_) break;
        std::string failure;
        if (ec) {
          failure = ec.message();
        } else {
          ++self->owner_.counters_.connects;
          error_code ignored;
          ip::tcp::socket& socket = self->stream_->socket();
          socket.set_option(ip::tcp::no_delay(true), ignored);
          // Unacknowledged data for this long ends the stream, and we
          // reconnect. Without it a stream that lived through a partition
          // waits out TCP's exponential retransmission backoff (seconds to
          // minutes) after the network heals; heartbeats keep data in flight,
          // so a healthy stream never idles into it.
          const unsigned user_timeout_ms = o.user_timeout_ms;
          ::setsockopt(socket.native_handle(), IPPROTO_TCP, TCP_USER_TIMEOUT,
                       &user_timeout_ms, sizeof(user_timeout_ms));
          const auto up_since = std::chrono::steady_clock::now();
          failure = co_await handshake(self, host);
          if (failure.empty()) {
            if (reported_down) {
              spdlog::info("raft peer {} at {} connected", self->id_, self->address_);
            }
            reported_down = false;
            const uint64_t conn = ++self->generation_;
            asio::co_spawn(*self->owner_.io_, read_replies(self, conn), asio::detached);
            co_await write_loop(self);
          }
          // Invalidate the reader of the stream that just ended before the next one.
          ++self->generation_;
          self->close_stream();
          if (self->closed_) break;
          const auto lived =
              std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - up_since);
          if (failure.empty() && lived >= kMinStableStream) {
            // A stream that worked: reconnect at once, starting the backoff afresh.
            backoff = milliseconds(o.backoff_initial_ms);
            continue;
          }
          // A peer that accepts and then closes at once (it rejected our hello,
          // or is shutting down) gets the same backoff as a refused connect,
          // not a reconnect loop.
          if (failure.empty())
            failure = "stream closed after " + std::to_string(lived.count()) + " ms";
        }
        ++self->owner_.counters_.connect_failures;
        if (!reported_down) {
          spdlog::warn("raft peer {} at {} unreachable: {}; retrying with backoff up to {} ms",
                       self->id_, self->address_, failure, o.backoff_max_ms);
          reported_down = true;
        }
        self->close_stream();
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
    void close_stream() {
      {
        // No sender may write to the descriptor once it closes (and is reused).
        std::lock_guard lock(mu_);
        direct_fd_ = -1;
      }
      if (stream_) stream_->close();
    }

    // Under mu_, with the writer parked: as many bytes of frames[from, to) as
    // the socket takes now, never waiting, in as few sendmsg calls as
    // kMaxDirectIovecs allows. A broken socket takes nothing more; the
    // writer's next write fails too and reconnects.
    size_t write_now_locked(const std::vector<std::string>& frames, size_t from, size_t to) {
      size_t done = 0;     // bytes written
      size_t first = from;  // the first frame not written whole
      size_t offset = 0;    // bytes of frames[first] written
      while (first < to) {
        std::array<iovec, kMaxDirectIovecs> iov{};
        size_t n_iov = 0;
        for (size_t k = first; k < to && n_iov < iov.size(); ++k, ++n_iov) {
          const size_t skip = k == first ? offset : 0;
          // sendmsg does not write through iov_base; the cast only drops const.
          iov[n_iov].iov_base = const_cast<char*>(frames[k].data() + skip);  // NOLINT(cppcoreguidelines-pro-type-const-cast)
          iov[n_iov].iov_len = frames[k].size() - skip;
        }
        msghdr msg{};
        msg.msg_iov = iov.data();
        msg.msg_iovlen = n_iov;
        const ssize_t n = ::sendmsg(direct_fd_, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) direct_fd_ = -1;
          break;
        }
        ++owner_.counters_.socket_writes;
        ++owner_.counters_.direct_writes;
        done += static_cast<size_t>(n);
        auto left = static_cast<size_t>(n);
        while (first < to && left >= frames[first].size() - offset) {
          left -= frames[first].size() - offset;
          offset = 0;
          ++first;
        }
        offset += left;
        if (left > 0) break;  // the socket took part of a frame: it is full now
      }
      return done;
    }

    // Closes the current stream when the timer armed for `attempt` fires
    // first (a connect, a TLS handshake or an answer that takes too long).
    void arm_deadline(uint64_t attempt, milliseconds after) {
      connect_timer_.expires_after(after);
      connect_timer_.async_wait([self = shared_from_this(), attempt](error_code tec) {
        if (!tec && attempt == self->generation_) self->close_stream();
      });
    }

    // Resolves and connects a new stream_, giving up after connect_timeout_ms.
    static asio::awaitable<error_code> connect(std::shared_ptr<Peer> self, const std::string& host,
                                               const std::string& port) {
      const TcpTransportOptions& o = self->owner_.opts_;
      error_code ec;
      auto endpoints =
          co_await self->resolver_.async_resolve(host, port, ip::tcp::resolver::numeric_service,
                                                 asio::redirect_error(asio::use_awaitable, ec));
      if (ec || self->closed_) co_return ec;
      // A fresh stream per attempt: a TLS session is not reusable, and a
      // reader of the previous stream may still hold that one.
      self->stream_ = std::make_shared<RaftStream>(*self->owner_.io_, self->owner_.tls_);
      const uint64_t attempt = ++self->generation_;
      const auto deadline = std::chrono::steady_clock::now() + milliseconds(o.connect_timeout_ms);
      // Closing the socket makes the pending connect fail with operation_aborted.
      self->arm_deadline(attempt, milliseconds(o.connect_timeout_ms));
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
        ip::tcp::socket& socket = self->stream_->socket();
        error_code ignored;
        socket.close(ignored);
        socket.open(entry.endpoint().protocol(), ec);
        if (ec) continue;
        bind_source_address(socket, entry.endpoint(), self->owner_.source_address_);
        co_await socket.async_connect(entry.endpoint(),
                                      asio::redirect_error(asio::use_awaitable, ec));
        if (!ec || ec == asio::error::operation_aborted) break;
      }
      self->connect_timer_.cancel();
      co_return ec;
    }

    // With peer TLS, the TLS handshake and the check that the certificate
    // names the host we dialled; then sends our hello and reads the answer.
    // "" when the peer is who the membership says (certificate, id, cluster,
    // and incarnation when one is recorded), else why not. Nothing is sent
    // to a peer before this passes. hello_timeout_ms bounds it all.
    static asio::awaitable<std::string> handshake(std::shared_ptr<Peer> self, std::string host) {
      Impl& owner = self->owner_;
      std::shared_ptr<RaftStream> stream = self->stream_;
      self->arm_deadline(++self->generation_, milliseconds(owner.opts_.hello_timeout_ms));
      std::string why = co_await exchange_hellos(self, *stream, host);
      self->connect_timer_.cancel();
      co_return why;
    }

    static asio::awaitable<std::string> exchange_hellos(std::shared_ptr<Peer> self,
                                                       RaftStream& stream, const std::string& host) {
      Impl& owner = self->owner_;
      error_code ec = co_await stream.handshake(RaftStream::Role::kDialer);
      if (ec) {
        ++owner.counters_.tls_failed;
        const std::string text = "TLS handshake with " + self->address_ + " failed: " + ec.message();
        owner.refusals_.warn("tls-out-" + std::to_string(self->id_), text);
        co_return text;
      }
      if (stream.is_tls()) {
        if (Status st = tls::check_peer_certificate(stream.peer_certificate(), host,
                                                    owner.tls_->allowed_cn());
            !st.is_ok()) {
          ++owner.counters_.certificates_refused;
          const std::string text = "refusing the node at " + self->address_ + " (peer " +
                                   std::to_string(self->id_) + "): " + st.message();
          owner.refusals_.warn("cert-out-" + std::to_string(self->id_), text);
          co_return text;
        }
      }
      const std::string hello = owner.local_hello(HelloKind::kStream, self->id_);
      const std::vector<asio::const_buffer> out{asio::buffer(hello)};
      co_await stream.write(out, ec);
      if (ec) co_return "sending the hello failed: " + ec.message();
      self->reader_ = FrameReader(kMaxHelloPayloadBytes);
      auto answer = co_await read_hello(stream, self->reader_);
      if (!answer.is_ok()) {
        co_return "no valid answer to our hello (waited up to " +
            std::to_string(owner.opts_.hello_timeout_ms) + " ms): " + answer.status().message();
      }
      const Hello& h = answer.value();
      if (h.kind != HelloKind::kAnswer) co_return std::string("the peer did not answer our hello");
      if (std::string why = owner.check_cluster_id(h, self->address_, "cluster-out-" + std::to_string(self->id_)); !why.empty()) co_return why;
      if (h.from != self->id_) {
        co_return "the node at " + self->address_ + " is node " + std::to_string(h.from) + " ('" +
            h.sender.name + "'), not node " + std::to_string(self->id_);
      }
      if (!self->incarnation_.empty() && h.sender.incarnation != self->incarnation_) {
        ++owner.counters_.refused_incarnations;
        const std::string name = h.sender.name.empty() ? std::to_string(h.from) : h.sender.name;
        const std::string text = "member " + name + " at " + self->address_ +
                                 " answered with a different data dir (incarnation " +
                                 (h.sender.incarnation.empty() ? "none" : h.sender.incarnation) +
                                 ", expected " + self->incarnation_ +
                                 "): its state was wiped; remove it and add it again "
                                 "(docs/operations.md)";
        owner.refusals_.warn("incarnation-out-" + std::to_string(self->id_), text);
        co_return text;
      }
      self->reader_.set_max_frame_bytes(kMaxFrameBytes);
      co_return std::string();
    }

    // Writes queued frames in batches until the stream breaks or the peer is closed.
    static asio::awaitable<void> write_loop(std::shared_ptr<Peer> self) {
      const TcpTransportOptions& o = self->owner_.opts_;
      std::vector<std::string> batch;
      std::vector<asio::const_buffer> buffers;
      std::shared_ptr<RaftStream> stream = self->stream_;
      {
        // The rest of a frame that a direct write began on an earlier stream
        // (which ended before this writer sent it) would open this stream
        // mid-frame: the peer would refuse the stream. Raft resends.
        std::lock_guard lock(self->mu_);
        if (self->front_is_partial_ && !self->queue_.empty()) {
          self->queued_bytes_ -= self->queue_.front().size();
          self->queue_.pop_front();
          ++self->owner_.counters_.dropped;
        }
        self->front_is_partial_ = false;
      }
      while (!self->closed_ && stream->is_open()) {
        if (batch.empty()) {
          std::lock_guard lock(self->mu_);
          self->front_is_partial_ = false;  // taken below, onto the stream it began on
          size_t bytes = 0;
          while (!self->queue_.empty() && (batch.empty() || bytes < o.max_write_batch_bytes)) {
            bytes += self->queue_.front().size();
            batch.push_back(std::move(self->queue_.front()));
            self->queue_.pop_front();
          }
          self->queued_bytes_ -= bytes;
          // Set under the same lock as the emptiness check, and the wait below
          // starts before any other handler runs, so a wake-up cannot be lost.
          if (batch.empty()) {
            self->writer_waiting_ = true;
            // A plain stream may be written by senders while we wait (enqueue);
            // TLS state belongs to this thread.
            self->direct_fd_ = stream->is_tls() || !stream->is_open() ? -1 : stream->socket().native_handle();
          }
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
        co_await stream->write(buffers, ec);
        if (ec) {
          self->owner_.counters_.dropped += batch.size();
          break;
        }
        ++self->owner_.counters_.socket_writes;
        self->owner_.counters_.sent += batch.size();
        metrics::instruments().peers.sent(self->id_, batch.size(), metrics::total_bytes(batch));
        batch.clear();
      }
      std::lock_guard lock(self->mu_);
      self->writer_waiting_ = false;
      self->direct_fd_ = -1;
    }

    // Reads what the peer sends back on our stream: its replies when it has
    // no stream of its own to us (a node waiting to be added answers its
    // leader this way). A completed read error means the stream ended (EOF
    // or reset); noticing that here, not at the next write, lets an idle
    // peer reconnect before Raft needs it.
    static asio::awaitable<void> read_replies(std::shared_ptr<Peer> self, uint64_t conn) {
      // This stream's own: the stream, and the reader with whatever followed
      // the answer hello, so a newer stream never shares either with us.
      std::shared_ptr<RaftStream> stream = self->stream_;
      FrameReader reader = std::move(self->reader_);
      std::string why;
      while (why.empty() && conn == self->generation_) {
        auto frame = co_await read_frame(*stream, reader);
        if (conn != self->generation_) co_return;  // a newer stream is the peer's now
        if (!frame.is_ok()) {
          // The stream ending is not a refusal; anything else is.
          if (frame.status().code() != StatusCode::kUnavailable) why = frame.status().message();
          break;
        }
        why = self->owner_.deliver(frame.value(), self->id_);
      }
      if (!why.empty()) {
        ++self->owner_.counters_.rejected;
        self->owner_.refusals_.warn("reply-" + std::to_string(self->id_),
                                    "closing stream to peer " + std::to_string(self->id_) + " at " +
                                        self->address_ + ": " + why);
      }
      if (conn == self->generation_) {
        self->close_stream();
        self->wake_.cancel();
      }
    }

    void drop_queue_locked() {
      owner_.counters_.dropped += queue_.size();
      queue_.clear();
      queued_bytes_ = 0;
      front_is_partial_ = false;
    }

    Impl& owner_;
    const raft::NodeId id_;
    const std::string address_;
    const std::string incarnation_;  // what the peer must answer with; empty: not checked
    ip::tcp::resolver resolver_;
    std::shared_ptr<RaftStream> stream_;  // the current connection; a new one per connect attempt
    asio::steady_timer wake_;  // the idle writer waits on it; cancel() wakes it
    asio::steady_timer backoff_timer_;
    asio::steady_timer connect_timer_;  // bounds the connect, then the TLS handshake and the answer
    FrameReader reader_;  // the answer hello's reader; read_replies takes it over
    uint64_t generation_ = 0;  // bumps per connect attempt and stream end; stale handlers compare
    std::atomic<bool> closed_{false};

    std::mutex mu_;
    std::deque<std::string> queue_;  // frames, in send order; the front may be the rest of one (front_is_partial_)
    bool front_is_partial_ = false;  // queue_.front() is what a direct write left of a frame on the current stream
    size_t queued_bytes_ = 0;
    bool accepting_ = true;        // false while unreachable or closed: enqueue drops
    bool writer_waiting_ = false;  // the writer is parked on wake_
    int direct_fd_ = -1;  // while it is, and the stream is plain TCP: its socket, for enqueue to write
  };

  Impl(raft::NodeId local_id, std::string listen_address, TcpTransportOptions options)
      : local_id_(local_id),
        listen_address_(std::move(listen_address)),
        source_address_(source_address_for(listen_address_)),
        opts_(std::move(options)),
        io_(std::make_unique<asio::io_context>(1)),
        acceptor_(std::make_unique<ip::tcp::acceptor>(*io_)) {
    local_.id = local_id_;
    local_.name = std::to_string(local_id_);
    local_.raft_address = listen_address_;
    if (opts_.peer_tls) {
      // Never plaintext instead: a context OpenSSL refuses leaves the
      // transport unable to listen or dial (listen() says why).
      auto ctx = PeerTlsContext::create(*opts_.peer_tls);
      if (ctx.is_ok()) {
        tls_ = std::move(ctx).value();
      } else {
        tls_status_ = ctx.status();
      }
    }
  }

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

  void set_local_identity(const PeerIdentity& self) {
    std::lock_guard lock(mu_);
    const uint64_t cluster_id = local_.cluster_id;
    local_ = self;
    local_.id = local_id_;
    if (local_.cluster_id == 0) local_.cluster_id = cluster_id;
  }

  void set_cluster_id(uint64_t cluster_id) {
    std::lock_guard lock(mu_);
    if (local_.cluster_id != cluster_id && cluster_id != 0) {
      spdlog::info("raft transport: this node belongs to cluster {:016x}", cluster_id);
    }
    local_.cluster_id = cluster_id;
  }

  uint64_t local_cluster_id() const {
    std::lock_guard lock(mu_);
    return local_.cluster_id;
  }

  // "" when the hello's cluster may talk to ours: the same, or either side
  // has none yet (a node waiting to be added takes its cluster's id from the
  // configuration it is sent). Else the refusal, logged (both sides check).
  // log_kind: the refusal log's rate-limit key.
  std::string check_cluster_id(const Hello& h, const std::string& remote, const std::string& log_kind) {
    const uint64_t local = local_cluster_id();
    if (local == 0 || h.sender.cluster_id == 0 || h.sender.cluster_id == local) return "";
    ++counters_.clusters_refused;
    char text[160];
    std::snprintf(text, sizeof text, "cluster id mismatch: local %016llx, remote %016llx from ",
                  static_cast<unsigned long long>(local),
                  static_cast<unsigned long long>(h.sender.cluster_id));
    std::string why = text + remote + " (node " + std::to_string(h.from) +
                            (h.sender.name.empty() ? "" : " '" + h.sender.name + "'") +
                            "): it belongs to another cluster; refusing its stream";
    refusals_.warn(log_kind, why);
    return why;
  }

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
    thread_ = named_thread("ckv-peers", [this] { io_->run(); });
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
    // now rather than at destruction; a probe still in flight answers then.
    io_.reset();
  }

  void set_peer(raft::NodeId id, const std::string& address, const std::string& incarnation) {
    std::lock_guard lock(mu_);
    if (stopped_ || id == raft::kNoNode || id == local_id_) return;
    auto it = peers_.find(id);
    if (it != peers_.end()) {
      if (it->second->address() == address && it->second->incarnation() == incarnation) return;
      const bool new_incarnation = it->second->incarnation() != incarnation;
      retire_locked(it->second);
      // Streams from it were accepted against the old incarnation.
      if (new_incarnation) close_streams_from_locked(id, "its expected incarnation changed");
    }
    auto peer = std::make_shared<Peer>(*this, id, address, incarnation);
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
    // A removed member is not heard any more (transport.h).
    if (!accept_unknown_) close_streams_from_locked(id, "it is no longer a member");
  }

  void set_accept_unknown_peers(bool on) {
    std::lock_guard lock(mu_);
    if (stopped_ || accept_unknown_ == on) return;
    accept_unknown_ = on;
    if (!on) close_streams_from_locked(raft::kNoNode, "this node has a configuration now");
  }

  void send(raft::Message m) {
    std::vector<raft::Message> one;
    one.push_back(std::move(m));
    send_all(one);
  }

  void send_all(const std::vector<raft::Message>& msgs) {
    // Encode before taking the lock: the Raft thread pays for it either way,
    // and other senders need not wait on a 1 MiB copy.
    std::vector<std::pair<raft::NodeId, std::string>> encoded;
    encoded.reserve(msgs.size());
    for (const raft::Message& m : msgs) {
      auto frame = encode_message_frame(m);
      if (!frame.is_ok()) {
        ++counters_.dropped;
        spdlog::error("raft message {} to {} dropped: {}", raft::to_string(m.type), m.to,
                      frame.status().message());
        continue;
      }
      encoded.emplace_back(m.to, std::move(frame).value());
    }
    // Each peer's frames together, in the order they were sent to it.
    std::stable_sort(encoded.begin(), encoded.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    // Held while enqueueing so that stop() cannot destroy io_ under a wake-up post.
    std::lock_guard lock(mu_);
    if (stopped_) {
      counters_.dropped += encoded.size();
      return;
    }
    std::vector<std::string> frames;
    for (size_t run = 0; run < encoded.size();) {
      const raft::NodeId to = encoded[run].first;
      frames.clear();
      for (; run < encoded.size() && encoded[run].first == to; ++run) frames.push_back(std::move(encoded[run].second));
      route_locked(to, frames);
    }
  }

  // Under mu_: frames for `to`, to its peer's queue, or else back on a stream it opened.
  void route_locked(raft::NodeId to, std::vector<std::string>& frames) {
    auto it = peers_.find(to);
    if (it != peers_.end()) {
      counters_.dropped += it->second->enqueue(frames, 0, frames.size());
      return;
    }
    if (!accept_unknown_) {
      counters_.dropped += frames.size();
      return;
    }
    // No route of our own (we have no configuration yet): answer on the
    // stream the sender opened to us, if it has one.
    for (std::string& frame : frames) {
      asio::post(*io_, [this, to, f = std::move(frame)]() mutable {
        for (const auto& conn : inbound_) {
          if (conn->state == Inbound::State::kStream && conn->from == to) {
            reply_on(conn, std::move(f));
            return;
          }
        }
        ++counters_.dropped;
      });
    }
  }

  void probe(const std::string& address, int timeout_ms, ProbeCallback cb) {
    auto state = std::make_shared<ProbeState>(std::move(cb));
    std::lock_guard lock(mu_);
    if (stopped_) {
      state->finish(Status(StatusCode::kUnavailable, "raft transport is stopped"));
      return;
    }
    asio::co_spawn(*io_, run_probe(address, std::max(timeout_ms, 1), state), asio::detached);
  }

  TcpTransportStats stats() const {
    TcpTransportStats s;
    s.messages_sent = counters_.sent.load();
    s.socket_writes = counters_.socket_writes.load();
    s.direct_writes = counters_.direct_writes.load();
    s.messages_dropped = counters_.dropped.load();
    s.messages_received = counters_.received.load();
    s.streams_rejected = counters_.rejected.load();
    s.connects = counters_.connects.load();
    s.connect_failures = counters_.connect_failures.load();
    s.connections_refused = counters_.refused_connections.load();
    s.hello_timeouts = counters_.hello_timeouts.load();
    s.senders_refused = counters_.refused_senders.load();
    s.incarnations_refused = counters_.refused_incarnations.load();
    s.stream_cap_refused = counters_.refused_stream_cap.load();
    s.buffer_budget_closes = counters_.budget_closes.load();
    s.foreign_messages = counters_.foreign_messages.load();
    s.probes_answered = counters_.probes_answered.load();
    s.tls_handshakes_failed = counters_.tls_failed.load();
    s.certificates_refused = counters_.certificates_refused.load();
    s.cluster_ids_refused = counters_.clusters_refused.load();
    s.inbound_buffered_bytes = inbound_buffered_.load();
    return s;
  }

 private:
  // One accepted stream (I/O thread only).
  struct Inbound {
    enum class State { kAwaitingHello, kStream, kProbe, kClosing };
    Inbound(asio::io_context& io, std::shared_ptr<PeerTlsContext> tls)
        : stream(io, std::move(tls)), hello_timer(io), stall_timer(io), reader(kMaxHelloPayloadBytes) {}
    RaftStream stream;
    asio::steady_timer hello_timer;
    asio::steady_timer stall_timer;  // bounds a read that would leave a partial frame buffered
    uint64_t reads = 0;              // bumps per read, so a stale stall timer does nothing
    FrameReader reader;
    State state = State::kAwaitingHello;
    raft::NodeId from = raft::kNoNode;  // known once the hello is read
    std::string remote;                 // "ip:port", for logs
    Clock::time_point accepted_at;
    Clock::time_point last_bytes_at;
    size_t charged = 0;  // bytes of the inbound budget this stream holds
    // Reply path: frames we write back (the answer hello, replies).
    std::deque<std::string> out;
    size_t out_bytes = 0;
    bool writing = false;
  };

  // Calls the probe's callback exactly once: with the answer, an error, or
  // (when the transport stops first and destroys the probe) kUnavailable.
  struct ProbeState {
    explicit ProbeState(ProbeCallback c) : cb(std::move(c)) {}
    ~ProbeState() {
      finish(Status(StatusCode::kUnavailable, "raft transport stopped during the probe"));
    }
    void finish(Result<PeerIdentity> r) {
      if (done) return;
      done = true;
      if (cb) cb(std::move(r));
    }
    ProbeCallback cb;
    bool done = false;
  };

  std::string local_hello(HelloKind kind, raft::NodeId to) {
    Hello h;
    h.kind = kind;
    h.from = local_id_;
    h.to = to;
    {
      std::lock_guard lock(mu_);
      h.sender = local_;
    }
    return encode_hello_frame(h);
  }

  // Reads the first frame, which must be a hello.
  static asio::awaitable<Result<Hello>> read_hello(RaftStream& stream, FrameReader& reader) {
    auto frame = co_await read_frame(stream, reader);
    if (!frame.is_ok()) {
      if (frame.status().message() == kStreamClosedMessage) {
        co_return Status(StatusCode::kUnavailable,
                         std::string(kStreamClosedMessage) + " (it refused us; see its log)");
      }
      co_return frame.status();
    }
    co_return decode_hello(frame.value());
  }

  // GCC 12 reports a false -Wmismatched-new-delete on Asio's coroutine frame
  // allocator for this coroutine (the frame's class-specific new and delete
  // do match); the pragma is confined to it.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
  asio::awaitable<void> run_probe(std::string address, int timeout_ms,
                                  std::shared_ptr<ProbeState> state) {
    auto hp = parse_host_port(address);
    if (!hp.is_ok() || !tls_status_.is_ok()) {
      state->finish(hp.is_ok() ? tls_status_ : hp.status());
      co_return;
    }
    const std::string host = hp->host.empty() ? "127.0.0.1" : hp->host;
    ip::tcp::resolver resolver(*io_);
    RaftStream stream(*io_, tls_);
    ip::tcp::socket& socket = stream.socket();
    asio::steady_timer timer(*io_);
    bool timed_out = false;
    timer.expires_after(milliseconds(timeout_ms));
    timer.async_wait([&](error_code ec) {
      if (ec) return;
      timed_out = true;
      error_code ignored;
      resolver.cancel();
      socket.close(ignored);
    });
    error_code ec;
    auto endpoints = co_await resolver.async_resolve(host, std::to_string(hp->port),
                                                     ip::tcp::resolver::numeric_service,
                                                     asio::redirect_error(asio::use_awaitable, ec));
    Result<Hello> answer = Status(StatusCode::kUnavailable, "cannot resolve " + address);
    if (!ec && !timed_out) {
      for (const auto& entry : endpoints) {
        error_code ignored;
        socket.close(ignored);
        socket.open(entry.endpoint().protocol(), ec);
        if (ec) continue;
        bind_source_address(socket, entry.endpoint(), source_address_);
        co_await socket.async_connect(entry.endpoint(),
                                      asio::redirect_error(asio::use_awaitable, ec));
        if (!ec || timed_out) break;
      }
      if (ec) {
        answer =
            Status(StatusCode::kUnavailable, "cannot connect to " + address + ": " + ec.message());
      } else {
        answer = co_await probe_on(stream, address, host);
      }
    }
    timer.cancel();
    error_code ignored;
    socket.close(ignored);
    if (timed_out) {
      state->finish(Status(StatusCode::kTimeout, "no answer from " + address + " within " +
                                                     std::to_string(timeout_ms) + " ms"));
    } else if (!answer.is_ok()) {
      state->finish(answer.status());
    } else if (answer->kind != HelloKind::kAnswer || answer->from == raft::kNoNode) {
      state->finish(
          Status(StatusCode::kCorrupt, address + " did not answer like a consensuskv node"));
    } else {
      state->finish(answer->sender);
    }
  }
#pragma GCC diagnostic pop

  // A connected probe: the TLS handshake and certificate check (the
  // certificate must name the host probed), then the probe hello and its answer.
  asio::awaitable<Result<Hello>> probe_on(RaftStream& stream, const std::string& address,
                                          const std::string& host) {
    error_code ec = co_await stream.handshake(RaftStream::Role::kDialer);
    if (ec) {
      ++counters_.tls_failed;
      co_return Status(StatusCode::kUnavailable,
                       "TLS handshake with " + address + " failed: " + ec.message());
    }
    if (stream.is_tls()) {
      if (Status st = tls::check_peer_certificate(stream.peer_certificate(), host, tls_->allowed_cn());
          !st.is_ok()) {
        ++counters_.certificates_refused;
        co_return Status(StatusCode::kUnavailable, "the node at " + address + ": " + st.message());
      }
    }
    const std::string hello = local_hello(HelloKind::kProbe, raft::kNoNode);
    const std::vector<asio::const_buffer> out{asio::buffer(hello)};
    co_await stream.write(out, ec);
    if (ec) co_return Status(StatusCode::kUnavailable, address + ": " + ec.message());
    FrameReader reader(kMaxHelloPayloadBytes);
    co_return co_await read_hello(stream, reader);
  }

  Status listen_locked() {
    if (listening_) return Status::ok();
    if (stopped_) return Status(StatusCode::kUnavailable, "raft transport is stopped");
    listen_status_ = tls_status_.is_ok() ? bind_and_listen() : tls_status_;
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
      auto conn = std::make_shared<Inbound>(*io_, tls_);
      error_code ec;
      co_await acceptor_->async_accept(conn->stream.socket(),
                                       asio::redirect_error(asio::use_awaitable, ec));
      if (closing_) break;
      if (ec) {
        spdlog::warn("raft transport accept failed: {}", ec.message());
        pause.expires_after(kAcceptRetryDelay);
        co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        continue;
      }
      conn->remote = endpoint_text(conn->stream.socket());
      conn->accepted_at = conn->last_bytes_at = Clock::now();
      if (inbound_.size() >= opts_.max_inbound_connections) {
        ++counters_.refused_connections;
        refusals_.warn("inbound-cap", "over " + std::to_string(opts_.max_inbound_connections) +
                                          " inbound streams; closing a new one from " +
                                          conn->remote);
        conn->stream.close();
        continue;
      }
      // Connections that have not said hello yet have their own, smaller
      // cap, so idle sockets cannot take the slots members need. At the cap
      // the oldest is closed, not the new one: a real peer sends its hello
      // at once, so it is never the oldest for long.
      std::shared_ptr<Inbound> oldest;
      size_t waiting = 0;
      for (const auto& c : inbound_) {
        if (c->state != Inbound::State::kAwaitingHello) continue;
        ++waiting;
        if (!oldest || c->accepted_at < oldest->accepted_at) oldest = c;
      }
      if (waiting >= opts_.max_pending_hello_connections && oldest) {
        ++counters_.refused_connections;
        refusals_.warn("pending-cap",
                       "over " + std::to_string(opts_.max_pending_hello_connections) +
                           " connections without a hello; closing the oldest, from " +
                           oldest->remote);
        close_inbound(oldest);
      }
      inbound_.insert(conn);
      arm_hello_timer(conn);
      asio::co_spawn(*io_, read_loop(conn), asio::detached);
    }
  }

  void arm_hello_timer(const std::shared_ptr<Inbound>& conn) {
    conn->hello_timer.expires_after(milliseconds(opts_.hello_timeout_ms));
    conn->hello_timer.async_wait([this, conn](error_code ec) {
      if (ec || conn->state != Inbound::State::kAwaitingHello) return;
      ++counters_.hello_timeouts;
      refusals_.warn("hello-timeout", "closing connection from " + conn->remote + ": no " +
                                          (tls_ ? "TLS handshake and hello" : "hello") + " within " +
                                          std::to_string(opts_.hello_timeout_ms) + " ms");
      close_inbound(conn);
    });
  }

  // I/O thread: closes the socket; the stream's read loop then ends and
  // releases what it holds.
  void close_inbound(const std::shared_ptr<Inbound>& conn) {
    conn->state = Inbound::State::kClosing;
    conn->hello_timer.cancel();
    conn->stall_timer.cancel();
    conn->stream.close();
  }

  // Accounts for a stream about to hold `bytes` in its buffer. Over the
  // total budget, the stream holding the most is closed (it is the one that
  // costs the memory; a partial frame from a real member is re-sent by
  // Raft): false when that is the asking stream itself.
  bool charge(const std::shared_ptr<Inbound>& conn, size_t bytes) {
    if (bytes > conn->charged) {
      const size_t more = bytes - conn->charged;
      if (inbound_buffered_ + more > opts_.max_inbound_buffer_bytes) {
        std::shared_ptr<Inbound> biggest = conn;
        for (const auto& c : inbound_) {
          if (c->state != Inbound::State::kClosing && c->charged > biggest->charged) biggest = c;
        }
        ++counters_.budget_closes;
        refusals_.warn("budget", "inbound buffers would exceed " +
                                     std::to_string(opts_.max_inbound_buffer_bytes) +
                                     " bytes; closing the stream from " + biggest->remote +
                                     " holding " + std::to_string(biggest->charged) + " bytes");
        close_inbound(biggest);
        if (biggest == conn) return false;
      }
    }
    inbound_buffered_ += bytes;
    inbound_buffered_ -= conn->charged;
    conn->charged = bytes;
    return true;
  }

  // The TLS handshake (with peer TLS), then frames off one inbound stream:
  // the hello, then messages handed to the handler.
  asio::awaitable<void> read_loop(std::shared_ptr<Inbound> conn) {
    std::string reject_reason;
    const error_code tls_ec = co_await conn->stream.handshake(RaftStream::Role::kAcceptor);
    if (tls_ec && conn->state != Inbound::State::kClosing) {
      // (A connection the hello timer or the pending cap closed was logged there.)
      ++counters_.tls_failed;
      refusals_.warn("tls-in", "closing connection from " + conn->remote +
                                   ": TLS handshake failed: " + tls_ec.message());
    }
    ReadHooks hooks;
    uint64_t read_no = 0;
    hooks.before_read = [&](size_t want) {
      if (!charge(conn, conn->reader.buffered_bytes() + want)) return false;
      // A partial frame holds memory only while it makes progress: a stream
      // that stops halfway through a frame is closed (a member's sender gives
      // up on a stuck stream after user_timeout_ms anyway).
      const size_t partial = conn->reader.buffered_bytes();
      read_no = ++conn->reads;
      if (partial > 0) {
        conn->stall_timer.expires_after(milliseconds(opts_.partial_frame_stall_ms));
        conn->stall_timer.async_wait([this, conn, read_no, partial](error_code tec) {
          if (tec || read_no != conn->reads || conn->state == Inbound::State::kClosing) return;
          ++counters_.rejected;
          refusals_.warn("stall", "closing stream from " + conn->remote +
                                      ": no progress on a partial frame (" +
                                      std::to_string(partial) + " bytes received) for " +
                                      std::to_string(opts_.partial_frame_stall_ms) + " ms");
          close_inbound(conn);
        });
      }
      return true;
    };
    hooks.after_read = [&](size_t got) {
      ++conn->reads;
      conn->stall_timer.cancel();
      if (got > 0) conn->last_bytes_at = Clock::now();
      (void)charge(conn, conn->reader.buffered_bytes());  // shrinking never fails
    };
    while (!tls_ec && !closing_ && reject_reason.empty() &&
           conn->state != Inbound::State::kClosing) {
      auto frame = co_await read_frame(conn->stream, conn->reader, &hooks);
      if (!frame.is_ok()) {
        // The stream ending (or closed for the budget, already logged) is no refusal.
        if (frame.status().code() != StatusCode::kUnavailable) {
          reject_reason = conn->state == Inbound::State::kAwaitingHello
                              ? "first frame is not a hello: " + frame.status().message()
                              : frame.status().message();
        }
        break;
      }
      if (conn->state == Inbound::State::kAwaitingHello) {
        reject_reason = accept_hello(frame.value(), conn);
        continue;
      }
      if (conn->state != Inbound::State::kStream) continue;  // a probe says nothing more
      reject_reason = deliver(frame.value(), conn->from);
    }
    if (!reject_reason.empty()) {
      ++counters_.rejected;
      refusals_.warn(
          "reject",
          "closing stream from " + conn->remote +
              (conn->from != raft::kNoNode ? " (node " + std::to_string(conn->from) + ")" : "") +
              ": " + reject_reason);
    }
    if (conn->state != Inbound::State::kProbe || !conn->writing) {
      close_inbound(conn);
    }
    // A probe's answer may still be being written; reply_on closes it after.
    inbound_buffered_ -= conn->charged;
    conn->charged = 0;
    conn->reader = FrameReader(kMaxHelloPayloadBytes);
    inbound_.erase(conn);
  }

  // A message frame on a stream whose sender is `from`. Returns why the
  // stream must close, or "" (a message that is merely not for us is dropped).
  std::string deliver(std::string_view payload, raft::NodeId from) {
    auto m = decode_message(payload);
    if (!m.is_ok()) return m.status().message();
    if (m->from != from) {
      // A stream speaks for its sender only: a member may not put words in
      // another member's mouth.
      ++counters_.foreign_messages;
      return "message claims to be from node " + std::to_string(m->from) + " on node " +
             std::to_string(from) + "'s stream";
    }
    if (local_id_ != raft::kNoNode && m->to != local_id_) {
      ++counters_.dropped;  // addressed to whoever had this address before us
      return "";
    }
    ++counters_.received;
    metrics::instruments().peers.received(from, payload.size());
    handler_(std::move(m).value());
    return "";
  }

  // Returns why the hello is unacceptable, or "" if it is fine; answers it.
  std::string accept_hello(std::string_view payload, const std::shared_ptr<Inbound>& conn) {
    auto decoded = decode_hello(payload);
    if (!decoded.is_ok()) return decoded.status().message();
    const Hello& h = decoded.value();
    if (h.kind == HelloKind::kAnswer) return "an answer hello opens no stream";
    conn->hello_timer.cancel();
    if (h.kind == HelloKind::kProbe) {
      // Says who we are and nothing else; what it reveals is what /status
      // shows anyway, plus the incarnation, which is an identity, not a secret.
      ++counters_.probes_answered;
      conn->state = Inbound::State::kProbe;
      reply_on(conn, local_hello(HelloKind::kAnswer, h.from));
      return "";
    }
    // First, so that a node of another cluster on a reused address is told
    // so, whatever else about it is wrong too. Answered like a probe (what
    // the answer says, a probe reveals anyway), then closed: the dialer
    // learns which cluster it reached and logs the mismatch on its side too.
    if (!check_cluster_id(h, conn->remote, "cluster-in").empty()) {
      conn->state = Inbound::State::kProbe;
      reply_on(conn, local_hello(HelloKind::kAnswer, h.from));
      return "";
    }
    if (local_id_ != raft::kNoNode && h.to != local_id_) {
      return "hello from node " + std::to_string(h.from) + " is addressed to node " +
             std::to_string(h.to) + ", this is node " + std::to_string(local_id_);
    }
    if (h.from == raft::kNoNode || h.from == local_id_) return "hello from an invalid node id";
    std::string expected;
    std::string member_address;
    bool known = false;
    bool accept_unknown = false;
    {
      std::lock_guard lock(mu_);
      auto it = peers_.find(h.from);
      known = it != peers_.end();
      if (known) {
        expected = it->second->incarnation();
        member_address = it->second->address();
      }
      accept_unknown = accept_unknown_;
    }
    const std::string who = "node " + std::to_string(h.from) +
                            (h.sender.name.empty() ? "" : " ('" + h.sender.name + "')");
    if (!known && !accept_unknown) {
      ++counters_.refused_senders;
      refusals_.warn("unknown-sender", "refusing a stream from " + conn->remote + ": " + who +
                                           " is not a member of this node's configuration");
      close_inbound(conn);
      return "";
    }
    // The certificate, not the hello, says who this is: it must name the
    // member's recorded raft address (a sender outside the configuration:
    // the address it claims, which only its certificate can back).
    if (tls_ && !certificate_names(conn, who, known ? member_address : h.sender.raft_address)) {
      close_inbound(conn);
      return "";
    }
    if (known && !expected.empty() && h.sender.incarnation != expected) {
      ++counters_.refused_incarnations;
      refusals_.warn("incarnation-in-" + std::to_string(h.from),
                     "refusing a stream from member " +
                         (h.sender.name.empty() ? std::to_string(h.from) : h.sender.name) + " at " +
                         conn->remote + ": it has a different data dir (incarnation " +
                         (h.sender.incarnation.empty() ? "none" : h.sender.incarnation) +
                         ", expected " + expected +
                         "): its state was wiped; remove it and add it again (docs/operations.md)");
      close_inbound(conn);
      return "";
    }
    // A sender keeps one stream to us, but after a partition its old stream
    // may never see a FIN, and we only read from it: allow a few per sender,
    // and at the cap replace the one idle longest, if it has been idle a
    // while. A member's live stream carries heartbeats, so a new stream
    // (a spoofed hello, say) can never evict it.
    std::shared_ptr<Inbound> idlest;
    size_t streams = 0;
    for (const auto& c : inbound_) {
      if (c == conn || c->state != Inbound::State::kStream || c->from != h.from) continue;
      ++streams;
      if (!idlest || c->last_bytes_at < idlest->last_bytes_at) idlest = c;
    }
    if (streams >= opts_.max_streams_per_sender) {
      if (idlest &&
          Clock::now() - idlest->last_bytes_at >= milliseconds(opts_.idle_stream_evict_ms)) {
        close_inbound(idlest);
      } else {
        ++counters_.refused_stream_cap;
        refusals_.warn("stream-cap", "refusing a stream from " + conn->remote + ": " + who +
                                         " already has " + std::to_string(streams) +
                                         " live streams to this node");
        close_inbound(conn);
        return "";
      }
    }
    conn->from = h.from;
    conn->state = Inbound::State::kStream;
    conn->reader.set_max_frame_bytes(kMaxFrameBytes);
    reply_on(conn, local_hello(HelloKind::kAnswer, h.from));
    return "";
  }

  // Peer TLS: whether the stream's verified certificate names the host of
  // raft_address, the address of the member `who` claims to be; logs why not.
  bool certificate_names(const std::shared_ptr<Inbound>& conn, const std::string& who,
                         const std::string& raft_address) {
    auto hp = parse_host_port(raft_address);
    Status st = hp.is_ok() ? tls::check_peer_certificate(conn->stream.peer_certificate(),
                                                         hp->host.empty() ? "127.0.0.1" : hp->host,
                                                         tls_->allowed_cn())
                           : Status(StatusCode::kInvalid, "no raft address to check it against");
    if (st.is_ok()) return true;
    ++counters_.certificates_refused;
    refusals_.warn("cert-in", "refusing a stream from " + conn->remote + " claiming to be " + who +
                                  " at " + (raft_address.empty() ? "?" : raft_address) + ": " +
                                  st.message());
    return false;
  }

  // I/O thread: writes a frame back on an inbound stream (the answer hello,
  // or replies of a node without routes of its own), bounded like a peer's queue.
  void reply_on(const std::shared_ptr<Inbound>& conn, std::string frame) {
    if (conn->state == Inbound::State::kClosing || conn->out.size() >= opts_.max_queue_messages ||
        (!conn->out.empty() && conn->out_bytes + frame.size() > opts_.max_queue_bytes)) {
      ++counters_.dropped;
      return;
    }
    conn->out_bytes += frame.size();
    conn->out.push_back(std::move(frame));
    if (!conn->writing) {
      conn->writing = true;
      asio::co_spawn(*io_, reply_writer(conn), asio::detached);
    }
  }

  asio::awaitable<void> reply_writer(std::shared_ptr<Inbound> conn) {
    std::vector<std::string> batch;
    std::vector<asio::const_buffer> buffers;
    while (!conn->out.empty() && conn->stream.is_open()) {
      batch.clear();
      buffers.clear();
      while (!conn->out.empty()) {
        batch.push_back(std::move(conn->out.front()));
        conn->out.pop_front();
      }
      conn->out_bytes = 0;
      for (const std::string& f : batch) buffers.push_back(asio::buffer(f));
      error_code ec;
      co_await conn->stream.write(buffers, ec);
      if (ec) break;
    }
    conn->writing = false;
    conn->out.clear();
    conn->out_bytes = 0;
    // A probe is answered and done: close, so the prober reads EOF after the answer.
    if (conn->state == Inbound::State::kProbe) close_inbound(conn);
  }

  // Closes inbound streams from `from` (kNoNode: from every sender that is
  // not a registered peer). Called under mu_ from any thread; the closing
  // happens on the I/O thread.
  void close_streams_from_locked(raft::NodeId from, std::string why) {
    std::set<raft::NodeId> keep;
    if (from == raft::kNoNode) {
      for (const auto& [id, peer] : peers_) keep.insert(id);
    }
    asio::post(*io_, [this, from, keep = std::move(keep), why = std::move(why)] {
      std::vector<std::shared_ptr<Inbound>> doomed;
      for (const auto& c : inbound_) {
        if (c->state != Inbound::State::kStream) continue;
        if (from != raft::kNoNode ? c->from == from : !keep.count(c->from)) doomed.push_back(c);
      }
      for (const auto& c : doomed) {
        spdlog::info("raft transport: closing the stream from node {} at {}: {}", c->from,
                     c->remote, why);
        close_inbound(c);
      }
    });
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
    for (const auto& conn : inbound_) close_inbound(conn);
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
  RefusalLog refusals_;
  std::shared_ptr<PeerTlsContext> tls_;  // null: plaintext streams
  Status tls_status_;                    // why tls_ could not be made (then nothing listens or dials)

  // Declared before everything holding sockets or timers, so destroyed last.
  std::unique_ptr<asio::io_context> io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::unique_ptr<ip::tcp::acceptor> acceptor_;
  std::set<std::shared_ptr<Inbound>> inbound_;  // I/O thread only
  std::atomic<size_t> inbound_buffered_{0};  // sum of Inbound::charged; written on the I/O thread
  std::atomic<bool> closing_{false};
  std::atomic<uint16_t> listen_port_{0};
  Handler handler_;  // set by start() before the I/O thread exists, then read-only

  mutable std::mutex mu_;  // guards what follows; taken before any Peer::mu_
  std::map<raft::NodeId, std::shared_ptr<Peer>> peers_;
  PeerIdentity local_;
  bool accept_unknown_ = false;
  Status listen_status_;
  bool listening_ = false;
  bool started_ = false;
  bool stopped_ = false;
  std::thread thread_;
};

TcpTransport::TcpTransport(raft::NodeId local_id, std::string listen_address,
                           TcpTransportOptions options)
    : impl_(std::make_unique<Impl>(local_id, std::move(listen_address), std::move(options))) {}

TcpTransport::~TcpTransport() { stop(); }

Status TcpTransport::listen() { return impl_->listen(); }
Status TcpTransport::listen_status() const { return impl_->listen_status(); }
uint16_t TcpTransport::listen_port() const { return impl_->listen_port(); }
void TcpTransport::set_local_identity(const PeerIdentity& self) { impl_->set_local_identity(self); }
void TcpTransport::set_cluster_id(uint64_t cluster_id) { impl_->set_cluster_id(cluster_id); }
void TcpTransport::start(Handler handler) { impl_->start(std::move(handler)); }
void TcpTransport::stop() { impl_->stop(); }
void TcpTransport::set_peer(raft::NodeId id, const std::string& address,
                            const std::string& incarnation) {
  impl_->set_peer(id, address, incarnation);
}
void TcpTransport::remove_peer(raft::NodeId id) { impl_->remove_peer(id); }
void TcpTransport::set_accept_unknown_peers(bool on) { impl_->set_accept_unknown_peers(on); }
void TcpTransport::send(raft::Message m) { impl_->send(std::move(m)); }
void TcpTransport::send_all(std::vector<raft::Message> msgs) { impl_->send_all(msgs); }
void TcpTransport::probe(const std::string& address, int timeout_ms, ProbeCallback cb) {
  impl_->probe(address, timeout_ms, std::move(cb));
}
TcpTransportStats TcpTransport::stats() const { return impl_->stats(); }

}  // namespace ckv::transport
