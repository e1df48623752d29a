// Watch and lease load over etcd's v3 gRPC API, for etcd and consensuskv alike: many watchers with a steady put rate (event delivery latency), or many leases kept alive over keepalive streams.
//
// Usage:
//   etcd_watch_lease_load --endpoint=127.0.0.1:2379 --op=watch [--watchers=10000] [--streams=100]
//                         [--keys=1000] [--rate=1000] [--conns=4] [--duration-s=20] [--warmup-s=3]
//   etcd_watch_lease_load --endpoint=127.0.0.1:2379 --op=leases [--leases=10000] [--streams=100]
//                         [--ttl=5] [--conns=4] [--duration-s=20] [--warmup-s=3]
//
// watch: --watchers watchers over --streams Watch streams (round-robin over
// --conns connections), watcher w on key w % --keys, created before the
// load starts; then puts at --rate per second (open loop, on a schedule,
// keys in turn) whose value is the send time. Every event's latency is
// receipt minus send time; each watcher must get one event per put to its
// key (a watcher that gets fewer is starved).
// leases: grants --leases leases with --ttl, attaches one key to each, and
// keeps them alive at one keepalive per lease per second, spread evenly over
// the second, over --streams LeaseKeepAlive streams (as clientv3 does, one
// stream carries many leases); at the end counts the keys still there.
//
// Output on stdout, one JSON object per line: {"phase":"measure"} when the
// measured window starts, {"phase":"measured"} when it ends (the driver,
// bench/etcd_watch_lease_bench.py, samples the server's CPU between the two),
// then the results. Exit status 1 when setup fails, 2 on bad arguments.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"

namespace {

namespace pb = etcdserverpb;
using Clock = std::chrono::steady_clock;

// Setup calls (creates, grants, puts) in flight at once.
constexpr int kMaxSetupInFlight = 256;
// How long setup (all watchers created, all leases granted) may take.
constexpr auto kSetupTimeout = std::chrono::seconds(120);
// After the window, how long the events of its last puts may take to arrive.
constexpr auto kDrainTimeout = std::chrono::seconds(10);
// Deadline of one unary call.
constexpr auto kCallDeadline = std::chrono::seconds(10);
// The put pacer and the keepalive scheduler wake this often.
constexpr auto kPacerTick = std::chrono::milliseconds(1);

struct Options {
  std::string endpoint;
  std::string op;
  int watchers = 10000;
  int leases = 10000;
  int streams = 100;
  int keys = 1000;
  int rate = 1000;
  int ttl = 5;
  int conns = 4;
  double duration_s = 20;
  double warmup_s = 3;
  std::string key_prefix = "wlbench/";
};

bool parse_args(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const size_t eq = a.find('=');
    const std::string name = a.substr(0, eq);
    const char* v = eq == std::string::npos ? "" : argv[i] + eq + 1;
    if (name == "--endpoint") o.endpoint = v;
    else if (name == "--op") o.op = v;
    else if (name == "--watchers") o.watchers = std::atoi(v);
    else if (name == "--leases") o.leases = std::atoi(v);
    else if (name == "--streams") o.streams = std::atoi(v);
    else if (name == "--keys") o.keys = std::atoi(v);
    else if (name == "--rate") o.rate = std::atoi(v);
    else if (name == "--ttl") o.ttl = std::atoi(v);
    else if (name == "--conns") o.conns = std::atoi(v);
    else if (name == "--duration-s") o.duration_s = std::atof(v);
    else if (name == "--warmup-s") o.warmup_s = std::atof(v);
    else if (name == "--key-prefix") o.key_prefix = v;
    else {
      std::fprintf(stderr, "etcd_watch_lease_load: unknown argument %s\n", a.c_str());
      return false;
    }
  }
  if (o.endpoint.empty() || (o.op != "watch" && o.op != "leases") || o.watchers < 1 || o.leases < 1 ||
      o.streams < 1 || o.keys < 1 || o.rate < 1 || o.ttl < 1 || o.conns < 1 || o.duration_s <= 0 ||
      o.warmup_s < 0) {
    std::fprintf(stderr, "etcd_watch_lease_load: need --endpoint, --op=watch|leases, positive counts\n");
    return false;
  }
  return true;
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

Clock::duration seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

void phase(const char* name) {
  std::printf("{\"phase\":\"%s\"}\n", name);
  std::fflush(stdout);
}

std::vector<std::shared_ptr<grpc::Channel>> channels(const Options& o) {
  std::vector<std::shared_ptr<grpc::Channel>> out;
  for (int c = 0; c < o.conns; ++c) {
    grpc::ChannelArguments args;
    args.SetInt("ckv.bench.conn", c);  // distinct args: one TCP connection per channel
    args.SetMaxReceiveMessageSize(-1);
    out.push_back(grpc::CreateCustomChannel(o.endpoint, grpc::InsecureChannelCredentials(), args));
  }
  return out;
}

// Bounds the setup calls in flight and waits for all of them.
class Gate {
 public:
  void enter() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return in_flight_ < kMaxSetupInFlight; });
    ++in_flight_;
  }
  void leave(bool ok) {
    std::lock_guard lock(mu_);
    --in_flight_;
    if (!ok) ++failed_;
    cv_.notify_all();
  }
  // Waits for every call (each has kCallDeadline); returns how many failed.
  int drain() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return in_flight_ == 0; });
    return failed_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int in_flight_ = 0;
  int failed_ = 0;
};

// One unary call through grpc's callback API; `done` runs with the status and response.
template <typename Req, typename Resp, typename Start, typename Done>
void unary(Start start, const Req& req, Done done) {
  struct Call {
    grpc::ClientContext ctx;
    Req req;
    Resp resp;
  };
  auto* c = new Call;
  c->req = req;
  c->ctx.set_deadline(std::chrono::system_clock::now() + kCallDeadline);
  start(&c->ctx, &c->req, &c->resp, [c, done](grpc::Status s) {
    done(s, c->resp);
    delete c;
  });
}

// A bidirectional stream whose writes are queued (grpc allows one write in
// flight) and whose reads go to on_read. Owned by its creator; wait_done()
// before destroying.
template <typename Req, typename Resp>
class Stream : public grpc::ClientBidiReactor<Req, Resp> {
 public:
  using OnRead = std::function<void(const Resp&)>;
  explicit Stream(OnRead on_read) : on_read_(std::move(on_read)) {}

  void begin() {
    this->StartRead(&resp_);
    this->StartCall();
  }
  void send(Req r) {
    std::lock_guard lock(mu_);
    if (finished_) return;
    queue_.push_back(std::move(r));
    if (!writing_) write_next();
  }
  void cancel() { ctx.TryCancel(); }
  void wait_done() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return finished_; });
  }
  bool failed() {
    std::lock_guard lock(mu_);
    return finished_;
  }
  grpc::ClientContext ctx;

 private:
  void write_next() {  // mu_ held
    if (queue_.empty()) {
      writing_ = false;
      return;
    }
    writing_ = true;
    out_ = std::move(queue_.front());
    queue_.pop_front();
    this->StartWrite(&out_);
  }
  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mu_);
    if (!ok) {
      writing_ = false;
      return;
    }
    write_next();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;
    on_read_(resp_);
    this->StartRead(&resp_);
  }
  void OnDone(const grpc::Status&) override {
    std::lock_guard lock(mu_);
    finished_ = true;
    cv_.notify_all();
  }

  OnRead on_read_;
  Resp resp_;
  Req out_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Req> queue_;
  bool writing_ = false;
  bool finished_ = false;
};

// ---------------------------------------------------------------- watch --

// What one watch stream received (its reads are serialized by grpc).
struct WatchTally {
  std::mutex mu;  // the main thread reads while the stream may still deliver
  std::vector<int> created_keys;  // key index of each watcher, in creation order
  std::unordered_map<int64_t, int> key_of_watch;  // watch id -> key index
  std::unordered_map<int64_t, int64_t> events_of_watch;  // events in the window, per watch id
  std::vector<double> latencies_ms;
  int64_t created = 0;
  int64_t canceled = 0;
};

int run_watch(const Options& o) {
  auto chans = channels(o);
  auto kv = pb::KV::NewStub(chans[0]);
  int64_t window_from = 0;
  int64_t window_to = INT64_MAX;
  std::atomic<int64_t> window_from_a{INT64_MAX};
  std::atomic<int64_t> window_to_a{INT64_MAX};
  std::vector<std::unique_ptr<WatchTally>> tallies;
  std::vector<std::unique_ptr<Stream<pb::WatchRequest, pb::WatchResponse>>> streams;
  for (int s = 0; s < o.streams; ++s) tallies.push_back(std::make_unique<WatchTally>());
  for (int s = 0; s < o.streams; ++s) {
    WatchTally* t = tallies[static_cast<size_t>(s)].get();
    streams.push_back(std::make_unique<Stream<pb::WatchRequest, pb::WatchResponse>>(
        [t, &window_from_a, &window_to_a](const pb::WatchResponse& r) {
          const int64_t now = now_ns();
          std::lock_guard lock(t->mu);
          if (r.created()) {
            const size_t i = static_cast<size_t>(t->created++);
            if (i < t->created_keys.size()) t->key_of_watch[r.watch_id()] = t->created_keys[i];
          }
          if (r.canceled()) ++t->canceled;
          for (const auto& e : r.events()) {
            const int64_t sent = std::atoll(e.kv().value().c_str());
            if (sent < window_from_a.load() || sent >= window_to_a.load()) continue;
            t->latencies_ms.push_back(static_cast<double>(now - sent) / 1e6);
            ++t->events_of_watch[r.watch_id()];
          }
        }));
    auto& st = *streams.back();
    pb::Watch::NewStub(chans[static_cast<size_t>(s % o.conns)])->async()->Watch(&st.ctx, &st);
    st.begin();
  }
  const Clock::time_point setup_start = Clock::now();
  for (int w = 0; w < o.watchers; ++w) {
    const size_t s = static_cast<size_t>(w % o.streams);
    pb::WatchRequest req;
    req.mutable_create_request()->set_key(o.key_prefix + std::to_string(w % o.keys));
    {
      std::lock_guard lock(tallies[s]->mu);
      tallies[s]->created_keys.push_back(w % o.keys);
    }
    streams[s]->send(std::move(req));
  }
  auto created = [&] {
    int64_t n = 0;
    for (auto& t : tallies) {
      std::lock_guard lock(t->mu);
      n += t->created;
    }
    return n;
  };
  while (created() < o.watchers) {
    if (Clock::now() - setup_start > kSetupTimeout) {
      std::fprintf(stderr, "etcd_watch_lease_load: only %lld of %d watchers created\n",
                   static_cast<long long>(created()), o.watchers);
      std::_Exit(1);  // live streams: no orderly teardown on a failed setup
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const double create_s = std::chrono::duration<double>(Clock::now() - setup_start).count();

  // Open-loop puts on a schedule: put i at start + i / rate.
  std::vector<int64_t> puts_of_key(static_cast<size_t>(o.keys), 0);
  std::atomic<int64_t> put_errors{0};
  std::atomic<int64_t> puts_in_flight{0};
  std::mutex put_lat_mu;
  std::vector<double> put_latencies_ms;  // of the window's puts: how much of an event's latency is the commit
  const Clock::time_point start = Clock::now();
  const Clock::time_point measure_from = start + seconds(o.warmup_s);
  const Clock::time_point stop_at = measure_from + seconds(o.duration_s);
  window_from = std::chrono::duration_cast<std::chrono::nanoseconds>(measure_from.time_since_epoch()).count();
  window_to = std::chrono::duration_cast<std::chrono::nanoseconds>(stop_at.time_since_epoch()).count();
  window_from_a = window_from;
  window_to_a = window_to;
  bool measuring = false;
  int64_t sent = 0;
  int64_t window_puts = 0;
  for (;;) {
    const Clock::time_point now = Clock::now();
    if (!measuring && now >= measure_from) {
      phase("measure");
      measuring = true;
    }
    if (now >= stop_at) break;
    const int64_t due = static_cast<int64_t>(std::chrono::duration<double>(now - start).count() * o.rate);
    for (; sent < due; ++sent) {
      const int key = static_cast<int>(sent % o.keys);
      pb::PutRequest req;
      req.set_key(o.key_prefix + std::to_string(key));
      const int64_t t = now_ns();
      req.set_value(std::to_string(t));
      const bool in_window = t >= window_from && t < window_to;
      if (in_window) {
        ++puts_of_key[static_cast<size_t>(key)];
        ++window_puts;
      }
      ++puts_in_flight;
      unary<pb::PutRequest, pb::PutResponse>(
          [&](grpc::ClientContext* c, const pb::PutRequest* q, pb::PutResponse* p, auto cb) {
            kv->async()->Put(c, q, p, std::move(cb));
          },
          req, [&, t, in_window](const grpc::Status& s, const pb::PutResponse&) {
            if (!s.ok()) ++put_errors;
            if (s.ok() && in_window) {
              std::lock_guard lock(put_lat_mu);
              put_latencies_ms.push_back(static_cast<double>(now_ns() - t) / 1e6);
            }
            --puts_in_flight;
          });
    }
    std::this_thread::sleep_for(kPacerTick);
  }
  phase("measured");
  int64_t expected = 0;
  for (auto& t : tallies) {
    std::lock_guard lock(t->mu);
    for (int k : t->created_keys) expected += puts_of_key[static_cast<size_t>(k)];
  }
  auto delivered = [&] {
    int64_t n = 0;
    for (auto& t : tallies) {
      std::lock_guard lock(t->mu);
      n += static_cast<int64_t>(t->latencies_ms.size());
    }
    return n;
  };
  // Every put ends within kCallDeadline; then its events may take kDrainTimeout.
  while (puts_in_flight.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const Clock::time_point drain_start = Clock::now();
  while (delivered() < expected && Clock::now() - drain_start < kDrainTimeout) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (auto& s : streams) s->cancel();
  for (auto& s : streams) s->wait_done();
  std::vector<double> all;
  int64_t short_watchers = 0;
  int64_t canceled = 0;
  for (auto& t : tallies) {
    std::lock_guard lock(t->mu);
    all.insert(all.end(), t->latencies_ms.begin(), t->latencies_ms.end());
    canceled += t->canceled;
    for (const auto& [id, key] : t->key_of_watch) {
      auto it = t->events_of_watch.find(id);
      const int64_t got = it == t->events_of_watch.end() ? 0 : it->second;
      if (got < puts_of_key[static_cast<size_t>(key)]) ++short_watchers;
    }
  }
  const double n = static_cast<double>(all.size());
  const double p50 = percentile(all, 0.50);
  const double p99 = percentile(all, 0.99);
  const double put_p50 = percentile(put_latencies_ms, 0.50);
  const double put_p99 = percentile(put_latencies_ms, 0.99);
  std::printf(
      "{\"op\":\"watch\",\"watchers\":%d,\"streams\":%d,\"keys\":%d,\"rate\":%d,\"create_s\":%.2f,"
      "\"puts\":%lld,\"put_errors\":%lld,\"events_expected\":%lld,\"events_delivered\":%.0f,"
      "\"events_per_s\":%.0f,\"short_watchers\":%lld,\"canceled\":%lld,\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
      "\"max_ms\":%.3f,\"put_p50_ms\":%.3f,\"put_p99_ms\":%.3f}\n",
      o.watchers, o.streams, o.keys, o.rate, create_s, static_cast<long long>(window_puts),
      static_cast<long long>(put_errors.load()), static_cast<long long>(expected), n, n / o.duration_s,
      static_cast<long long>(short_watchers), static_cast<long long>(canceled), p50, p99,
      all.empty() ? 0.0 : all.back(), put_p50, put_p99);
  return 0;
}

// --------------------------------------------------------------- leases --

int run_leases(const Options& o) {
  auto chans = channels(o);
  auto lease = pb::Lease::NewStub(chans[0]);
  auto kv = pb::KV::NewStub(chans[0]);
  std::vector<int64_t> ids(static_cast<size_t>(o.leases), 0);
  const Clock::time_point setup_start = Clock::now();
  {
    Gate gate;
    for (int i = 0; i < o.leases; ++i) {
      gate.enter();
      pb::LeaseGrantRequest req;
      req.set_ttl(o.ttl);
      unary<pb::LeaseGrantRequest, pb::LeaseGrantResponse>(
          [&](grpc::ClientContext* c, const pb::LeaseGrantRequest* q, pb::LeaseGrantResponse* p, auto cb) {
            lease->async()->LeaseGrant(c, q, p, std::move(cb));
          },
          req, [&, i](const grpc::Status& s, const pb::LeaseGrantResponse& r) {
            ids[static_cast<size_t>(i)] = r.id();
            gate.leave(s.ok() && r.error().empty());
          });
    }
    if (const int failed = gate.drain(); failed > 0) {
      std::fprintf(stderr, "etcd_watch_lease_load: %d lease grants failed\n", failed);
      return 1;
    }
  }
  std::unordered_map<int64_t, size_t> index_of;
  for (size_t i = 0; i < ids.size(); ++i) index_of[ids[i]] = i;
  // Keepalives start before the keys are attached: the TTL may be short.
  // Send times of each lease's unanswered keepalives: a lease's answers come
  // in the order of its requests, so each answer is timed against its own
  // request even when the server falls seconds behind.
  std::mutex lat_mu;
  std::vector<std::deque<int64_t>> sent_at(ids.size());
  int64_t total_sent = 0;
  int64_t total_answered = 0;
  std::atomic<int64_t> answered{0};
  std::atomic<int64_t> expired_answers{0};
  std::vector<double> latencies_ms;
  std::atomic<bool> in_window{false};
  std::vector<std::unique_ptr<Stream<pb::LeaseKeepAliveRequest, pb::LeaseKeepAliveResponse>>> streams;
  for (int s = 0; s < o.streams; ++s) {
    streams.push_back(std::make_unique<Stream<pb::LeaseKeepAliveRequest, pb::LeaseKeepAliveResponse>>(
        [&](const pb::LeaseKeepAliveResponse& r) {
          const int64_t now = now_ns();
          auto it = index_of.find(r.id());
          if (it == index_of.end()) return;
          if (r.ttl() <= 0) ++expired_answers;
          std::lock_guard lock(lat_mu);
          std::deque<int64_t>& q = sent_at[it->second];
          if (q.empty()) return;
          const int64_t sent = q.front();
          q.pop_front();
          ++total_answered;
          if (!in_window.load()) return;
          ++answered;
          latencies_ms.push_back(static_cast<double>(now - sent) / 1e6);
        }));
    auto& st = *streams.back();
    lease->async()->LeaseKeepAlive(&st.ctx, &st);
    st.begin();
  }
  // Keepalive i of each second goes at i / leases into that second, on stream i % streams.
  std::atomic<bool> stop{false};
  std::atomic<int64_t> keepalives_sent{0};
  std::thread scheduler([&] {
    const Clock::time_point start = Clock::now();
    int64_t sent = 0;
    while (!stop.load()) {
      const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
      const int64_t due = static_cast<int64_t>(elapsed * o.leases);
      for (; sent < due; ++sent) {
        const size_t i = static_cast<size_t>(sent % o.leases);
        pb::LeaseKeepAliveRequest req;
        req.set_id(ids[i]);
        {
          std::lock_guard lock(lat_mu);
          sent_at[i].push_back(now_ns());
          ++total_sent;
        }
        streams[i % streams.size()]->send(std::move(req));
        if (in_window.load()) ++keepalives_sent;
      }
      std::this_thread::sleep_for(kPacerTick);
    }
  });
  // A put fails when its lease expired first (a server whose keepalives
  // fall behind by a TTL while the keys are written): counted, not fatal.
  int attach_errors = 0;
  {
    Gate gate;
    for (int i = 0; i < o.leases; ++i) {
      gate.enter();
      pb::PutRequest req;
      req.set_key(o.key_prefix + std::to_string(i));
      req.set_value("v");
      req.set_lease(ids[static_cast<size_t>(i)]);
      unary<pb::PutRequest, pb::PutResponse>(
          [&](grpc::ClientContext* c, const pb::PutRequest* q, pb::PutResponse* p, auto cb) {
            kv->async()->Put(c, q, p, std::move(cb));
          },
          req, [&](const grpc::Status& s, const pb::PutResponse&) { gate.leave(s.ok()); });
    }
    attach_errors = gate.drain();
  }
  const double setup_s = std::chrono::duration<double>(Clock::now() - setup_start).count();
  std::this_thread::sleep_for(seconds(o.warmup_s));
  const int64_t expired_before = expired_answers.load();
  phase("measure");
  in_window = true;
  std::this_thread::sleep_for(seconds(o.duration_s));
  in_window = false;
  phase("measured");
  int64_t backlog = 0;  // keepalives sent and not answered yet, at the end of the window
  {
    std::lock_guard lock(lat_mu);
    backlog = total_sent - total_answered;
  }
  const int64_t expired_in_window = expired_answers.load() - expired_before;
  // Count the keys while keepalives still run: every one must be there.
  int64_t keys_left = -1;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + kCallDeadline);
    pb::RangeRequest req;
    req.set_key(o.key_prefix);
    std::string end = o.key_prefix;
    end.back() = static_cast<char>(end.back() + 1);
    req.set_range_end(end);
    req.set_count_only(true);
    pb::RangeResponse resp;
    if (kv->Range(&ctx, req, &resp).ok()) keys_left = resp.count();
  }
  stop = true;
  scheduler.join();
  bool broken = false;
  for (auto& s : streams) broken = broken || s->failed();
  for (auto& s : streams) s->cancel();
  for (auto& s : streams) s->wait_done();
  const double p50 = percentile(latencies_ms, 0.50);
  const double p99 = percentile(latencies_ms, 0.99);
  std::printf(
      "{\"op\":\"leases\",\"leases\":%d,\"streams\":%d,\"ttl\":%d,\"setup_s\":%.2f,\"keepalives_sent\":%lld,"
      "\"attach_errors\":%d,\"keepalives_answered\":%lld,\"keepalives_per_s\":%.0f,\"expired_answers\":%lld,\"keys_left\":%lld,"
      "\"backlog\":%lld,\"streams_broken\":%s,\"p50_ms\":%.3f,\"p99_ms\":%.3f}\n",
      o.leases, o.streams, o.ttl, setup_s, static_cast<long long>(keepalives_sent.load()), attach_errors,
      static_cast<long long>(answered.load()), static_cast<double>(answered.load()) / o.duration_s,
      static_cast<long long>(expired_in_window), static_cast<long long>(keys_left),
      static_cast<long long>(backlog), broken ? "true" : "false",
      p50, p99);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse_args(argc, argv, o)) return 2;
  return o.op == "watch" ? run_watch(o) : run_leases(o);
}
