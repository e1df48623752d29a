// /metrics, /healthz, /readyz, /health and /status?member= (see observability.h); the page itself is status_page.cc.
#include "http/observability.h"

#include <memory>
#include <set>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "fsm/kv_state_machine.h"
#include "http/etcd_gateway.h"
#include "metrics/exposition.h"
#include "metrics/instruments.h"
#include "metrics/process_stats.h"

namespace ckv::http {

// The status page's HTML (status_page.cc).
const std::string& status_page_html();

namespace {

using metrics::Exposition;

Response text_response(unsigned status, std::string body, const char* content_type) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  r.headers.emplace_back("Content-Type", content_type);
  // Go's http.Error sets this on etcd's answers; it keeps browsers from guessing.
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  return r;
}

constexpr const char* kPlainText = "text/plain; charset=utf-8";

// What Go's net/http answers for a method a handler refuses (etcd's /health does).
Response go_method_not_allowed(const char* allow) {
  Response r = text_response(405, "Method Not Allowed\n", kPlainText);
  r.headers.emplace_back("Allow", allow);
  return r;
}

bool is_leader(const node::NodeStatus& st) { return st.leader_id != raft::kNoNode && st.leader_id == st.id; }

const node::MemberStatus* self_member(const node::NodeStatus& st) {
  for (const node::MemberStatus& m : st.members) {
    if (m.id == st.id) return &m;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------
// Probes, in Kubernetes' format: "[+]name ok" / "[-]name failed: reason"
// lines, then "<probe> check passed|failed". Without ?verbose a pass is
// just "ok"; a failure always lists the checks (as Kubernetes does).

struct Check {
  explicit Check(std::string n, bool passed = true, std::string reason = {})
      : name(std::move(n)), ok(passed), why(std::move(reason)) {}
  std::string name;
  bool ok;
  std::string why;  // when failed
};

struct ProbeQuery {
  bool verbose = false;
  std::set<std::string, std::less<>> excluded;  // ?exclude=a,b
};

ProbeQuery probe_query(const std::map<std::string, std::string>& params) {
  ProbeQuery q;
  q.verbose = params.count("verbose") != 0;
  if (auto it = params.find("exclude"); it != params.end()) {
    std::string_view rest = it->second;
    while (!rest.empty()) {
      const size_t comma = std::min(rest.find(','), rest.size());
      if (comma > 0) q.excluded.emplace(rest.substr(0, comma));
      rest.remove_prefix(std::min(comma + 1, rest.size()));
    }
  }
  return q;
}

Response probe_response(std::string_view probe, const std::vector<Check>& checks, const ProbeQuery& q) {
  bool ok = true;
  std::string lines;
  for (const Check& c : checks) {
    if (q.excluded.count(c.name) != 0) {
      lines += "[+]" + c.name + " excluded: ok\n";
      continue;
    }
    ok = ok && c.ok;
    lines += c.ok ? "[+]" + c.name + " ok\n" : "[-]" + c.name + " failed: " + c.why + "\n";
  }
  if (ok && !q.verbose) return text_response(200, "ok", kPlainText);
  lines += std::string(probe) + (ok ? " check passed\n" : " check failed\n");
  return text_response(ok ? 200 : 503, std::move(lines), kPlainText);
}

Check raft_loop_check(const node::NodeStatus& st) {
  Check c{"raft-loop"};
  if (st.raft_loop_age_ms > kHealthzMaxRaftLoopAgeMs) {
    c.ok = false;
    c.why = "the Raft thread has not run for " + std::to_string(st.raft_loop_age_ms) + " ms (limit " +
            std::to_string(kHealthzMaxRaftLoopAgeMs) + " ms)";
  }
  return c;
}

// Everything /readyz decides without waiting: leader, membership, apply lag.
std::vector<Check> readiness_checks(const node::NodeStatus& st) {
  std::vector<Check> checks{raft_loop_check(st)};
  Check leader{"leader"};
  if (st.leader_id == raft::kNoNode) {
    leader.ok = false;
    leader.why = "no leader known (election in progress, or this node is cut off from a quorum)";
  }
  checks.push_back(leader);
  // A learner is ready too: that it has caught up is what the read barrier
  // proves (it passes once it applied all the leader had committed).
  Check member{"member"};
  const node::MemberStatus* self = self_member(st);
  if (self == nullptr) {
    member.ok = false;
    member.why = "this node is not in the cluster's configuration (not added yet, or removed)";
  }
  checks.push_back(member);
  Check applied{"applied"};
  const uint64_t lag = st.commit_index > st.applied_index ? st.commit_index - st.applied_index : 0;
  if (lag > kReadyzMaxApplyLagEntries) {
    applied.ok = false;
    applied.why = "applied index " + std::to_string(st.applied_index) + " trails commit index " +
                  std::to_string(st.commit_index) + " by " + std::to_string(lag) + " entries (limit " +
                  std::to_string(kReadyzMaxApplyLagEntries) + ")";
  }
  checks.push_back(applied);
  return checks;
}

void handle_readyz(node::Node& node, const ProbeQuery& q, Reply reply) {
  const node::NodeStatus st = node.status();
  std::vector<Check> checks = readiness_checks(st);
  if (st.leader_id == raft::kNoNode || q.excluded.count("linearizable-read") != 0) {
    checks.emplace_back("linearizable-read", st.leader_id != raft::kNoNode, "no leader to confirm a read with");
    return reply(probe_response("readyz", checks, q));
  }
  // Thesis §6.4: the barrier passes once this node has applied everything
  // the leader had committed when it was asked, confirmed by a quorum.
  node.read_barrier(kReadyzReadTimeoutMs,
                    [checks = std::move(checks), q, reply = std::move(reply)](const Status& s) mutable {
                      checks.emplace_back("linearizable-read", s.is_ok(), s.is_ok() ? "" : s.message());
                      reply(probe_response("readyz", checks, q));
                    });
}

// etcd 3.4's /health (etcdhttp/metrics.go): false while an alarm is raised
// (ours: NOSPACE) or no leader is known, else a read decides; with
// ?serializable=true no read. 3.4 gives no reason in the body (3.5 does);
// ours goes to the log, and /readyz?verbose says it.
void handle_health(node::Node& node, const std::map<std::string, std::string>& params, Reply reply) {
  auto answer = [](bool healthy, const std::string& why) {
    if (healthy) return text_response(200, R"({"health":"true"})", kPlainText);
    spdlog::debug("/health: unhealthy: {}", why);
    return text_response(503, std::string(R"({"health":"false"})") + "\n", kPlainText);  // http.Error's newline, as etcd
  };
  const node::NodeStatus st = node.status();
  if (st.no_space) return reply(answer(false, "alarm NOSPACE: the disk is full"));
  if (st.leader_id == raft::kNoNode) return reply(answer(false, "no leader"));
  if (auto it = params.find("serializable"); it != params.end() && it->second == "true") {
    return reply(answer(true, ""));
  }
  node.read_barrier(kHealthReadTimeoutMs, [reply = std::move(reply), answer](const Status& s) {
    reply(answer(s.is_ok(), s.message()));
  });
}

// ---------------------------------------------------------------------------
// /metrics: what the node answers at scrape time, then the instruments.

// A gauge with one unlabelled sample.
struct GaugeRow {
  const char* name;
  const char* help;
  double value;
};

void render_node(node::Node& node, Exposition& out) {
  const node::NodeStatus st = node.status();
  const node::MemberStatus* self = self_member(st);
  auto num = [](auto v) { return static_cast<double>(v); };
  const GaugeRow server_rows[] = {
      {"consensuskv_server_has_leader", "1 if this node knows a leader, else 0 (etcd_server_has_leader).",
       st.leader_id != raft::kNoNode ? 1.0 : 0.0},
      {"consensuskv_server_is_leader", "1 if this node is the leader, else 0 (etcd_server_is_leader).",
       is_leader(st) ? 1.0 : 0.0},
      {"consensuskv_server_is_learner", "1 if this node is a learner, else 0 (etcd_server_is_learner).",
       self != nullptr && self->role == "learner" ? 1.0 : 0.0},
      {"consensuskv_server_no_space", "1 while the data dir's disk is full and writes are refused (etcd's NOSPACE alarm).",
       st.no_space ? 1.0 : 0.0},
      {"consensuskv_raft_term", "The current Raft term.", num(st.term)},
      {"consensuskv_raft_commit_index",
       "Highest log index known to be committed (etcd_server_proposals_committed_total).", num(st.commit_index)},
      {"consensuskv_raft_applied_index",
       "Highest log index applied to the state machine (etcd_server_proposals_applied_total).", num(st.applied_index)},
      {"consensuskv_raft_apply_lag_entries", "Committed entries not applied yet: commit index minus applied index.",
       num(st.commit_index > st.applied_index ? st.commit_index - st.applied_index : 0)},
      {"consensuskv_raft_last_index", "Index of the last entry in this node's log.", num(st.last_index)},
      {"consensuskv_raft_snapshot_index", "Log index of this node's latest snapshot.", num(st.snapshot_index)},
      {"consensuskv_raft_loop_age_seconds", "Seconds since the Raft thread last woke up (/healthz's check).",
       num(st.raft_loop_age_ms) / 1000.0},
  };
  for (const GaugeRow& g : server_rows) out.gauge(g.name, g.help, g.value);

  size_t voters = 0, learners = 0;
  for (const node::MemberStatus& m : st.members) (m.role == "voter" ? voters : learners) += 1;
  out.family("consensuskv_cluster_members", "Members of this node's latest configuration, by role.",
             metrics::Type::kGauge);
  out.sample("consensuskv_cluster_members", {{"role", "voter"}}, num(voters));
  out.sample("consensuskv_cluster_members", {{"role", "learner"}}, num(learners));
  out.family("consensuskv_cluster_member_info",
             "1 per member: its id in hex (the peer label of the network metrics) and name.", metrics::Type::kGauge);
  for (const node::MemberStatus& m : st.members) {
    const std::string id = metrics::hex_id(m.id);
    out.sample("consensuskv_cluster_member_info", {{"peer", id}, {"name", m.info.name}, {"role", m.role}}, 1);
  }

  const fsm::KvStateMachine& sm = node.state_machine();
  const watch::Hub::Stats w = node.watch_hub().stats();
  const GaugeRow state_rows[] = {
      {"consensuskv_mvcc_revision", "The MVCC store's current revision (etcd_debugging_mvcc_current_revision).",
       num(st.revision)},
      {"consensuskv_mvcc_compact_revision",
       "Revision of the last compaction, -1 if none (etcd_debugging_mvcc_compact_revision).", num(st.compact_revision)},
      {"consensuskv_mvcc_keys",
       "Keys in the MVCC index: live, or deleted with versions kept until compaction (etcd_debugging_mvcc_keys_total).",
       num(sm.key_count())},
      {"consensuskv_mvcc_db_total_size_in_bytes",
       "Bytes of the files in the data dir, the space reserve excluded (etcd_mvcc_db_total_size_in_bytes).",
       num(st.data_dir_bytes)},
      {"consensuskv_mvcc_db_total_size_in_use_in_bytes",
       "Estimated bytes of the replicated state in memory (etcd_mvcc_db_total_size_in_use_in_bytes).",
       num(st.state_machine_bytes)},
      {"consensuskv_lease_active", "Leases granted and not revoked or expired yet.", num(sm.lease_ttls().size())},
      {"consensuskv_watch_watchers", "Watchers on this node (etcd_debugging_mvcc_watcher_total).", num(w.watchers)},
      {"consensuskv_watch_streams", "Open watch streams on this node (etcd_debugging_mvcc_watch_stream_total).",
       num(w.streams)},
      {"consensuskv_watch_unsynced_watchers",
       "Watchers catching up from history (etcd_debugging_mvcc_slow_watcher_total).", num(w.unsynced)},
      {"consensuskv_watch_pending_bytes", "Bytes of events queued for watchers and not delivered yet.",
       num(w.pending_bytes)},
  };
  for (const GaugeRow& g : state_rows) out.gauge(g.name, g.help, g.value);
}

// /status?member=NAME: that member's own /status, through this node.
bool forward_member_status(node::Node& node, const Request& req, const std::map<std::string, std::string>& params,
                           Reply& reply) {
  auto it = params.find("member");
  if (it == params.end() || req.forwarded) return false;  // a forwarded one is answered by its target
  const node::NodeStatus st = node.status();
  if (it->second == st.name) return false;
  for (const node::MemberStatus& m : st.members) {
    if (m.info.name != it->second) continue;
    if (m.info.api_address.empty()) {
      reply(error_response(503, "member " + m.info.name + " has not registered its API address yet"));
    } else {
      reply(Forward{m.info.api_address, kMemberStatusTimeoutMs});
    }
    return true;
  }
  reply(error_response(404, "no member named " + it->second));
  return true;
}

}  // namespace

size_t http_metrics_route(std::string_view target) {
  const std::string_view path = target.substr(0, target.find('?'));
  if (!is_etcd_gateway_target(path)) return metrics::http_route_index(path);
  return metrics::http_route_index(etcd_gateway_path(std::string(path)));
}

std::string render_metrics(node::Node& node) {
  Exposition out;
  render_node(node, out);
  metrics::instruments().render(out);
  metrics::render_process_metrics(out);
  return out.take();
}

bool serve_observability(node::Node& node, const Request& req, const std::string& path,
                         const std::map<std::string, std::string>& params, Reply& reply) {
  const bool get = req.method == "GET";
  auto only_get = [&](auto&& serve) {
    if (!get) {
      Response r = error_response(405, "method not allowed; use GET");
      r.headers.emplace_back("Allow", "GET");
      reply(std::move(r));
    } else {
      serve();
    }
    return true;
  };
  if (path == "/metrics") {
    return only_get([&] { reply(text_response(200, render_metrics(node), metrics::kContentType)); });
  }
  if (path == "/healthz") {
    return only_get([&] {
      reply(probe_response("healthz", {raft_loop_check(node.status())}, probe_query(params)));
    });
  }
  if (path == "/readyz") return only_get([&] { handle_readyz(node, probe_query(params), std::move(reply)); });
  if (path == "/health") {
    if (req.method != "GET") {
      reply(go_method_not_allowed("GET"));
    } else {
      handle_health(node, params, std::move(reply));
    }
    return true;
  }
  if (path == "/ui") {
    return only_get([&] { reply(text_response(200, status_page_html(), "text/html; charset=utf-8")); });
  }
  if (path == "/status" && get) return forward_member_status(node, req, params, reply);
  return false;
}

}  // namespace ckv::http
