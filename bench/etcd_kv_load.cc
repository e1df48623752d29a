// A closed-loop load generator speaking etcd's v3 KV protocol (gRPC): puts or ranges at N clients, for etcd and consensuskv alike.
//
// Usage:
//   etcd_kv_load --endpoints=127.0.0.1:2379[,...] --op=put|range|preload [--clients=64]
//                [--conns=8] [--duration-s=10] [--warmup-s=2] [--keys=10000]
//                [--value-bytes=256] [--serializable] [--key-prefix=bench/]
//
// Each client keeps one request in flight (closed loop, as etcd's own
// `benchmark` tool does), on --conns gRPC connections spread over the
// endpoints (clients share connections round-robin, HTTP/2 multiplexes
// them). Puts write random keys among --keys with --value-bytes values;
// ranges read single keys among the same --keys (preload them with a put
// run first; --op=preload puts every key once, key-prefix0 .. key-prefix<keys-1>,
// and ends when all are written, whatever --duration-s). Prints one JSON object on stdout: throughput, latency
// percentiles over the measured window (warm-up excluded), and errors with
// the first error's text. Exit status 0 even with errors: the caller
// decides; 2 on bad arguments.
//
// Why C++ and not etcd's Go benchmark: Debian ships no etcd benchmark
// binary, and the same generator must drive both systems in one run.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"

namespace {

namespace pb = etcdserverpb;
using Clock = std::chrono::steady_clock;

// Worker threads polling completion queues: the machine has 2 cores, and
// one queue per thread keeps the generator's own cost small.
constexpr int kWorkerThreads = 2;
// Per-request deadline: a request slower than this counts as an error.
constexpr auto kRequestDeadline = std::chrono::seconds(10);

struct Options {
  std::vector<std::string> endpoints;
  std::string op = "put";
  int clients = 64;
  int conns = 8;
  double duration_s = 10;
  double warmup_s = 2;
  int keys = 10000;
  int value_bytes = 256;
  bool serializable = false;
  std::string key_prefix = "bench/";
  double slow_ms = 0;  // > 0: print each measured request slower than this to stderr, with its wall-clock start
};

bool parse_args(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char* name) -> const char* {
      const std::string p = std::string(name) + "=";
      return a.rfind(p, 0) == 0 ? argv[i] + p.size() : nullptr;
    };
    if (const char* v = value("--endpoints")) {
      std::stringstream ss(v);
      for (std::string e; std::getline(ss, e, ',');)
        if (!e.empty()) o.endpoints.push_back(e);
    } else if (const char* v = value("--op")) {
      o.op = v;
    } else if (const char* v = value("--clients")) {
      o.clients = std::atoi(v);
    } else if (const char* v = value("--conns")) {
      o.conns = std::atoi(v);
    } else if (const char* v = value("--duration-s")) {
      o.duration_s = std::atof(v);
    } else if (const char* v = value("--warmup-s")) {
      o.warmup_s = std::atof(v);
    } else if (const char* v = value("--keys")) {
      o.keys = std::atoi(v);
    } else if (const char* v = value("--value-bytes")) {
      o.value_bytes = std::atoi(v);
    } else if (const char* v = value("--key-prefix")) {
      o.key_prefix = v;
    } else if (const char* v = value("--slow-ms")) {
      o.slow_ms = std::atof(v);
    } else if (a == "--serializable") {
      o.serializable = true;
    } else {
      std::fprintf(stderr, "etcd_kv_load: unknown argument %s\n", a.c_str());
      return false;
    }
  }
  if (o.endpoints.empty() || (o.op != "put" && o.op != "range" && o.op != "preload") || o.clients < 1 || o.conns < 1 ||
      o.duration_s <= 0 || o.warmup_s < 0 || o.keys < 1 || o.value_bytes < 0) {
    std::fprintf(stderr, "etcd_kv_load: need --endpoints, --op=put|range|preload, positive counts\n");
    return false;
  }
  if (o.op == "preload") {
    o.clients = std::min(o.clients, o.keys);
    o.warmup_s = 0;
    o.duration_s = 1e6;  // ends when every key is written
  }
  o.conns = std::min(o.conns, o.clients);
  return true;
}

// Shared results; latencies are recorded only inside the measured window.
struct Stats {
  std::mutex mu;
  std::vector<double> latencies_ms;
  uint64_t errors = 0;
  std::string first_error;
  uint64_t completed = 0;  // every request answered, warm-up included (for CPU per request)
};

// One in-flight request and what it needs until it completes.
struct Call {
  int client = 0;
  Clock::time_point started;
  grpc::ClientContext ctx;
  grpc::Status status;
  pb::PutResponse put_resp;
  pb::RangeResponse range_resp;
  std::unique_ptr<grpc::ClientAsyncResponseReader<pb::PutResponse>> put;
  std::unique_ptr<grpc::ClientAsyncResponseReader<pb::RangeResponse>> range;
};

class Load {
 public:
  explicit Load(Options o) : o_(std::move(o)), value_(static_cast<size_t>(o_.value_bytes), 'v') {
    for (int c = 0; c < o_.conns; ++c) {
      grpc::ChannelArguments args;
      // Distinct args per channel: grpc would otherwise share one subchannel
      // (one TCP connection) among channels to the same address.
      args.SetInt("ckv.bench.conn", c);
      args.SetMaxReceiveMessageSize(-1);
      // No retry policy is configured, and the retry filter that grpc++
      // puts on every call cost ~11% of the generator's CPU per put (27 vs
      // 30 us, bench/README.md): CPU taken from the servers on these 2 cores.
      args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
      auto ch = grpc::CreateCustomChannel(o_.endpoints[c % o_.endpoints.size()],
                                          grpc::InsecureChannelCredentials(), args);
      stubs_.push_back(pb::KV::NewStub(ch));
    }
    for (int t = 0; t < kWorkerThreads; ++t) queues_.push_back(std::make_unique<grpc::CompletionQueue>());
    for (int c = 0; c < o_.clients; ++c) rngs_.emplace_back(0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(c + 1));
  }

  void run(Stats& stats) {
    const Clock::time_point begin = Clock::now();
    measure_from_ = begin + to_duration(o_.warmup_s);
    stop_at_ = measure_from_ + to_duration(o_.duration_s);
    // Every client's first request is queued before any worker polls, so a
    // worker knows how many of its clients are in flight.
    for (int c = 0; c < o_.clients; ++c) {
      if (!start_call(c, rngs_for(c))) ++orphaned_[static_cast<size_t>(c % kWorkerThreads)];
    }
    std::vector<std::thread> workers;
    for (int t = 0; t < kWorkerThreads; ++t) {
      workers.emplace_back([this, t, &stats] { poll(t, stats); });
    }
    for (auto& w : workers) w.join();
  }

 private:
  static Clock::duration to_duration(double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  }

  // Each client's generator is only touched by the thread polling its
  // queue (client % kWorkerThreads), after run() created them all.
  std::mt19937_64& rngs_for(int client) { return rngs_[static_cast<size_t>(client)]; }

  // The next key to request; nullopt once a preload has handed out every key.
  std::optional<std::string> key_for(std::mt19937_64& rng) {
    const uint64_t keys = static_cast<uint64_t>(o_.keys);
    if (!preload_) return o_.key_prefix + std::to_string(rng() % keys);
    const uint64_t k = next_key_++;
    if (k >= keys) return std::nullopt;
    return o_.key_prefix + std::to_string(k);
  }

  // Starts the client's next request; false when a preload has nothing left.
  bool start_call(int client, std::mt19937_64& rng) {
    std::optional<std::string> key = key_for(rng);
    if (!key) return false;
    auto* call = new Call;  // owned by the completion queue until it completes (poll)
    call->client = client;
    call->ctx.set_deadline(std::chrono::system_clock::now() + kRequestDeadline);
    pb::KV::Stub& stub = *stubs_[static_cast<size_t>(client % o_.conns)];
    grpc::CompletionQueue* cq = queues_[static_cast<size_t>(client % kWorkerThreads)].get();
    call->started = Clock::now();
    if (o_.op != "range") {
      pb::PutRequest req;
      req.set_key(std::move(*key));
      req.set_value(value_);
      call->put = stub.AsyncPut(&call->ctx, req, cq);
      call->put->Finish(&call->put_resp, &call->status, call);
    } else {
      pb::RangeRequest req;
      req.set_key(std::move(*key));
      req.set_serializable(o_.serializable);
      call->range = stub.AsyncRange(&call->ctx, req, cq);
      call->range->Finish(&call->range_resp, &call->status, call);
    }
    return true;
  }

  void poll(int t, Stats& stats) {
    grpc::CompletionQueue& cq = *queues_[static_cast<size_t>(t)];
    int in_flight = 0;
    for (int c = t; c < o_.clients; c += kWorkerThreads) ++in_flight;
    in_flight -= orphaned_[static_cast<size_t>(t)];
    std::vector<double> local;
    uint64_t errors = 0;
    uint64_t completed = 0;
    std::string first_error;
    void* tag = nullptr;
    bool ok = false;
    while (in_flight > 0 && cq.Next(&tag, &ok)) {
      std::unique_ptr<Call> call(static_cast<Call*>(tag));
      const Clock::time_point now = Clock::now();
      ++completed;
      if (call->started >= measure_from_ && now <= stop_at_) {
        if (ok && call->status.ok()) {
          const double ms = std::chrono::duration<double, std::milli>(now - call->started).count();
          local.push_back(ms);
          if (o_.slow_ms > 0 && ms > o_.slow_ms) report_slow(ms, now);
        } else {
          ++errors;
          if (first_error.empty()) {
            first_error = std::to_string(call->status.error_code()) + ": " + call->status.error_message();
          }
        }
      }
      if (now >= stop_at_ || !start_call(call->client, rngs_for(call->client))) --in_flight;
    }
    std::lock_guard lock(stats.mu);
    stats.completed += completed;
    stats.latencies_ms.insert(stats.latencies_ms.end(), local.begin(), local.end());
    stats.errors += errors;
    if (stats.first_error.empty()) stats.first_error = first_error;
  }

  // One line per slow request: when it started (wall clock, to match server
  // logs), how long it took, and the client.
  static void report_slow(double ms, Clock::time_point done) {
    const auto started = std::chrono::system_clock::now() -
                         std::chrono::duration_cast<std::chrono::system_clock::duration>(Clock::now() - done) -
                         std::chrono::duration_cast<std::chrono::system_clock::duration>(
                             std::chrono::duration<double, std::milli>(ms));
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(started.time_since_epoch()).count();
    const std::time_t secs = static_cast<std::time_t>(us / 1000000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    std::fprintf(stderr, "slow: started %02d:%02d:%02d.%06lld took %.3f ms\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
                 static_cast<long long>(us % 1000000), ms);
  }

  const Options o_;
  const bool preload_ = o_.op == "preload";
  std::atomic<uint64_t> next_key_{0};
  int orphaned_[kWorkerThreads] = {};  // clients whose first request never started (set before polling)
  const std::string value_;
  std::vector<std::unique_ptr<pb::KV::Stub>> stubs_;
  std::vector<std::unique_ptr<grpc::CompletionQueue>> queues_;
  std::vector<std::mt19937_64> rngs_;
  Clock::time_point measure_from_;
  Clock::time_point stop_at_;
};

double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t i = std::min(sorted.size() - 1, static_cast<size_t>(p * static_cast<double>(sorted.size())));
  return sorted[i];
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse_args(argc, argv, o)) return 2;
  Stats stats;
  Load(o).run(stats);
  std::sort(stats.latencies_ms.begin(), stats.latencies_ms.end());
  const double ops = static_cast<double>(stats.latencies_ms.size());
  std::printf(
      "{\"op\":\"%s\",\"serializable\":%s,\"clients\":%d,\"conns\":%d,\"ops\":%.0f,\"rps\":%.1f,"
      "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,\"errors\":%llu,\"first_error\":\"%s\",\"total_ops\":%llu}\n",
      o.op.c_str(), o.serializable ? "true" : "false", o.clients, o.conns, ops, ops / o.duration_s,
      percentile(stats.latencies_ms, 0.50), percentile(stats.latencies_ms, 0.99),
      stats.latencies_ms.empty() ? 0.0 : stats.latencies_ms.back(),
      static_cast<unsigned long long>(stats.errors), json_escape(stats.first_error).c_str(),
      static_cast<unsigned long long>(stats.completed));
  return 0;
}
