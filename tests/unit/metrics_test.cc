// Unit tests for src/metrics: the Prometheus text format, histograms, label sets, /proc parsing, the peer table.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "metrics/exposition.h"
#include "metrics/instruments.h"
#include "metrics/metrics.h"
#include "metrics/peer_traffic.h"
#include "metrics/process_stats.h"
#include "metrics/request_table.h"
#include "node/peer_rtt.h"

namespace ckv::metrics {
namespace {

TEST(MetricsExposition, EscapesLabelValuesAndHelp) {
  EXPECT_EQ(escape_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  EXPECT_EQ(escape_help("x\\y\nz \"q\""), "x\\\\y\\nz \"q\"");  // quotes are not escaped in HELP

  Exposition out;
  out.family("ckv_test_total", "Help with a \\ and\na newline.", Type::kCounter);
  out.sample("ckv_test_total", {{"path", "/a\"b\\c\nd"}, {"code", "200"}}, 3);
  EXPECT_EQ(out.text(),
            "# HELP ckv_test_total Help with a \\\\ and\\na newline.\n"
            "# TYPE ckv_test_total counter\n"
            "ckv_test_total{path=\"/a\\\"b\\\\c\\nd\",code=\"200\"} 3\n");
}

TEST(MetricsExposition, FormatsValuesAsPrometheusReadsThem) {
  EXPECT_EQ(format_value(0), "0");
  EXPECT_EQ(format_value(42), "42");
  EXPECT_EQ(format_value(0.25), "0.25");
  EXPECT_EQ(format_value(-1), "-1");
  EXPECT_EQ(format_value(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(format_value(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(format_value(std::nan("")), "NaN");
  EXPECT_EQ(std::stod(format_value(0.1 + 0.2)), 0.1 + 0.2);  // round-trips
}

TEST(MetricsExposition, HistogramHasCumulativeBucketsInfSumAndCount) {
  static constexpr double kBounds[] = {0.25, 1, 10};
  Histogram h(kBounds);
  h.observe(0.125);
  h.observe(0.25);  // le is inclusive: counted in the 0.25 bucket
  h.observe(5);
  h.observe(100);  // above every bound: only +Inf
  Exposition out;
  out.family("ckv_lat_seconds", "Latency.", Type::kHistogram);
  out.histogram("ckv_lat_seconds", {{"route", "/get"}}, h.snapshot());
  EXPECT_EQ(out.text(),
            "# HELP ckv_lat_seconds Latency.\n"
            "# TYPE ckv_lat_seconds histogram\n"
            "ckv_lat_seconds_bucket{route=\"/get\",le=\"0.25\"} 2\n"
            "ckv_lat_seconds_bucket{route=\"/get\",le=\"1\"} 2\n"
            "ckv_lat_seconds_bucket{route=\"/get\",le=\"10\"} 3\n"
            "ckv_lat_seconds_bucket{route=\"/get\",le=\"+Inf\"} 4\n"
            "ckv_lat_seconds_sum{route=\"/get\"} 105.375\n"
            "ckv_lat_seconds_count{route=\"/get\"} 4\n");
}

TEST(MetricsExposition, UnlabelledHistogramAndNaNGoToInf) {
  static constexpr double kBounds[] = {1};
  Histogram h(kBounds);
  h.observe(std::nan(""));
  const HistogramSnapshot s = h.snapshot();
  EXPECT_EQ(s.cumulative, (std::vector<uint64_t>{0, 1}));
  EXPECT_EQ(s.count, 1u);
  Exposition out;
  out.family("ckv_x_seconds", "X.", Type::kHistogram);
  Histogram empty(kBounds);
  out.histogram("ckv_x_seconds", {}, empty.snapshot());
  EXPECT_EQ(out.text(),
            "# HELP ckv_x_seconds X.\n# TYPE ckv_x_seconds histogram\n"
            "ckv_x_seconds_bucket{le=\"1\"} 0\nckv_x_seconds_bucket{le=\"+Inf\"} 0\n"
            "ckv_x_seconds_sum 0\nckv_x_seconds_count 0\n");
}

TEST(MetricsExposition, NamesAreChecked) {
  EXPECT_TRUE(valid_metric_name("consensuskv_raft_term"));
  EXPECT_TRUE(valid_metric_name("a:b_c1"));
  EXPECT_FALSE(valid_metric_name("1abc"));
  EXPECT_FALSE(valid_metric_name("a-b"));
  EXPECT_FALSE(valid_metric_name(""));
  EXPECT_TRUE(valid_label_name("route"));
  EXPECT_FALSE(valid_label_name("a:b"));
  EXPECT_FALSE(valid_label_name("__name"));
  Exposition out;
  out.gauge("ckv_g", "G.", 1);
  EXPECT_DEATH(out.gauge("ckv_g", "G again.", 2), "written twice");
  EXPECT_DEATH(out.family("bad-name", "x", Type::kGauge), "bad metric name");
}

TEST(MetricsRegistry, RendersInstrumentsAndCollectorsInOrder) {
  Counter c;
  Gauge g;
  c.inc(3);
  g.set(-2);
  Registry r;
  r.add("ckv_c_total", "C.", c);
  r.add("ckv_g", "G.", g);
  r.add([](Exposition& out) { out.gauge("ckv_collected", "Read at scrape time.", 7); });
  Exposition out;
  r.render(out);
  EXPECT_EQ(out.text(),
            "# HELP ckv_c_total C.\n# TYPE ckv_c_total counter\nckv_c_total 3\n"
            "# HELP ckv_g G.\n# TYPE ckv_g gauge\nckv_g -2\n"
            "# HELP ckv_collected Read at scrape time.\n# TYPE ckv_collected gauge\nckv_collected 7\n");
}

std::string code_name(size_t c) { return "c" + std::to_string(c); }

TEST(MetricsRequestTable, CountsSeenPairsAndFoldsUnknownRoutesAndCodes) {
  RequestTable t({"/a", "/b", "other"}, 3, code_name);
  t.record(0, 1, 0.001);
  t.record(0, 1, 0.002);
  t.record(7, 2, 0.5);    // unknown route index: "other"
  t.record(1, 99, 0.01);  // code out of range: "other"
  Exposition out;
  t.render(out, "ckv_req_total", "Requests.", "ckv_req_seconds", "Latency.", "route", "code");
  const std::string& s = out.text();
  EXPECT_NE(s.find("ckv_req_total{route=\"/a\",code=\"c1\"} 2\n"), std::string::npos) << s;
  EXPECT_NE(s.find("ckv_req_total{route=\"other\",code=\"c2\"} 1\n"), std::string::npos) << s;
  EXPECT_NE(s.find("ckv_req_total{route=\"/b\",code=\"other\"} 1\n"), std::string::npos) << s;
  EXPECT_EQ(s.find("code=\"c0\""), std::string::npos) << "pairs never seen are not written";
  EXPECT_NE(s.find("ckv_req_seconds_count{route=\"/a\"} 2\n"), std::string::npos) << s;
  EXPECT_NE(s.find("ckv_req_seconds_bucket{route=\"other\",le=\"0.5\"} 1\n"), std::string::npos) << s;
}

TEST(MetricsLabels, HttpRoutesAndGrpcMethodsAreBounded) {
  EXPECT_EQ(http_route_name(http_route_index("/get")), "/get");
  EXPECT_EQ(http_route_name(http_route_index("/v3/kv/range")), "/v3/kv/range");
  EXPECT_EQ(http_route_name(http_route_index("/metrics")), "/metrics");
  EXPECT_EQ(http_route_name(http_route_index("/no/such/thing")), "other");
  EXPECT_EQ(http_route_name(http_route_index("/v3/made/up")), "/v3/other");
  EXPECT_EQ(http_route_name(http_route_index("/getx")), "other");
  // A scanner's random paths all land on the two catch-alls.
  for (int i = 0; i < 1000; ++i) {
    const size_t r = http_route_index("/x" + std::to_string(i));
    EXPECT_EQ(http_route_name(r), "other");
  }
  EXPECT_NE(grpc_method_index("/etcdserverpb.KV/Range"), grpc_method_index("/etcdserverpb.KV/Put"));
  EXPECT_EQ(grpc_method_index("/etcdserverpb.KV/Nope"), grpc_method_index("/made.up/Method"));
  EXPECT_EQ(grpc_code_name(0), "OK");
  EXPECT_EQ(grpc_code_name(14), "Unavailable");
  EXPECT_EQ(grpc_code_name(16), "Unauthenticated");
}

TEST(MetricsProcess, ParsesProcStatWithAHostileCommandName) {
  // Field 2 may hold spaces and parentheses: fields count from the last ')'.
  const std::string stat =
      "1234 (a b) (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 3 0 4242 104857600 2560 "
      "18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n";
  auto st = parse_proc_stat(stat, 100, 4096);
  ASSERT_TRUE(st.has_value());
  EXPECT_DOUBLE_EQ(st->cpu_seconds, 4.0);  // (250 + 150) / 100
  EXPECT_DOUBLE_EQ(st->start_time_ticks, 4242);
  EXPECT_DOUBLE_EQ(st->virtual_bytes, 104857600);
  EXPECT_DOUBLE_EQ(st->resident_bytes, 2560.0 * 4096);
  EXPECT_FALSE(parse_proc_stat("1234 (x) S 1 2", 100, 4096).has_value());  // truncated
  EXPECT_FALSE(parse_proc_stat("no parenthesis", 100, 4096).has_value());
  EXPECT_FALSE(parse_proc_stat(stat, 0, 4096).has_value());
  EXPECT_EQ(parse_boot_time("cpu 1 2 3\nbtime 1700000000\nprocesses 5\n"), 1700000000.0);
  EXPECT_FALSE(parse_boot_time("cpu 1 2 3\n").has_value());
}

TEST(MetricsProcess, RendersTheStandardNamesForThisProcess) {
  Exposition out;
  render_process_metrics(out);
  for (const char* name : {"process_cpu_seconds_total ", "process_resident_memory_bytes ", "process_open_fds ",
                           "process_max_fds ", "process_start_time_seconds "}) {
    EXPECT_NE(out.text().find(std::string("\n") + name), std::string::npos) << name << " in\n" << out.text();
  }
}

TEST(MetricsPeers, SlotsAreStablePerIdAndOverflowIsBounded) {
  auto table = std::make_unique<PeerTraffic>();
  table->sent(7, 2, 100);
  table->received(7, 40);
  EXPECT_EQ(&table->slot(7), &table->slot(7));
  EXPECT_EQ(table->slot(7).messages_sent.value(), 2u);
  EXPECT_EQ(table->slot(7).bytes_sent.value(), 100u);
  EXPECT_EQ(table->slot(7).bytes_received.value(), 40u);
  EXPECT_EQ(table->slot(0).id, 0u) << "kNoNode is nobody: the overflow slot";
  // Forged ids beyond the table's size all share one slot.
  for (uint64_t id = 1000; id < 1000 + kMaxPeerSlots + 10; ++id) table->received(id, 1);
  size_t slots = 0;
  uint64_t overflow_messages = 0;
  table->for_each([&](const PeerSlot& s) {
    ++slots;
    if (s.id == 0) overflow_messages = s.messages_received.value();
  });
  EXPECT_EQ(slots, kMaxPeerSlots + 1);
  EXPECT_EQ(overflow_messages, 11u);  // id 7 holds a slot: 11 of the 2,058 forged ids do not fit
}

TEST(MetricsPeers, ConcurrentFirstSightingsAgreeOnOneSlot) {
  auto table = std::make_unique<PeerTraffic>();
  constexpr int kThreads = 4;
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (uint64_t id = 1; id <= 200; ++id) table->received(id, 1);
    });
  }
  for (auto& t : threads) t.join();
  size_t slots = 0;
  table->for_each([&](const PeerSlot& s) {
    ++slots;
    EXPECT_EQ(s.messages_received.value(), 4u) << "peer " << s.id;
  });
  EXPECT_EQ(slots, 200u);
}

TEST(MetricsPeers, HeartbeatRoundTripIsTimedFromSendToAnswer) {
  auto table = std::make_unique<PeerTraffic>();
  node::PeerRtt rtt(*table);
  const auto t0 = node::PeerRtt::Clock::now();
  raft::Message hb;
  hb.type = raft::MessageType::kHeartbeat;
  hb.from = 1;
  hb.to = 2;
  raft::Message ack;
  ack.type = raft::MessageType::kHeartbeatResp;
  ack.from = 2;
  ack.to = 1;
  rtt.sent(hb, t0);
  rtt.sent(hb, t0 + std::chrono::milliseconds(3));  // a second one is not timed while the first is out
  rtt.received(ack, t0 + std::chrono::milliseconds(5));
  rtt.received(ack, t0 + std::chrono::milliseconds(9));  // nothing timed: ignored
  raft::Message append = hb;
  append.type = raft::MessageType::kAppend;
  rtt.sent(append, t0);  // only heartbeats are timed
  HistogramSnapshot h = table->slot(2).round_trip_seconds.snapshot();
  EXPECT_EQ(h.count, 1u);
  EXPECT_NEAR(h.sum, 0.005, 1e-9);
  // An answer lost for longer than kMaxOutstanding: timing restarts with the next heartbeat.
  rtt.sent(hb, t0);
  rtt.sent(hb, t0 + node::PeerRtt::kMaxOutstanding + std::chrono::seconds(1));
  rtt.received(ack, t0 + node::PeerRtt::kMaxOutstanding + std::chrono::seconds(1) + std::chrono::milliseconds(2));
  h = table->slot(2).round_trip_seconds.snapshot();
  EXPECT_EQ(h.count, 2u);
  EXPECT_NEAR(h.sum, 0.007, 1e-9);
}

}  // namespace
}  // namespace ckv::metrics
