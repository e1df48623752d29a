// Node end to end in one process: bootstrap, join, replicate, linearizable reads, restart from disk, snapshots.
#include "node/node.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <filesystem>
#include <future>
#include <thread>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "common/bytes.h"
#include "fsm/kv_state_machine.h"
#include "memory_transport.h"
#include "node/forward_waiters.h"
#include "node/member_info.h"
#include "node/restore.h"
#include "storage/backup_file.h"
#include "raft/raft.h"
#include "storage/log_store.h"
#include "storage/wal/wal.h"
#include "storage/node_meta.h"
#include "storage/open_log.h"
#include "storage/snapshot_file.h"

namespace ckv::node {
namespace {

using namespace std::chrono_literals;

class NodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() /
            ("ckv_node_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(root_);
  }
  void TearDown() override {
    for (auto& [name, n] : nodes_) n->stop();
    nodes_.clear();
    std::filesystem::remove_all(root_);
  }

  NodeOptions options(const std::string& name, bool bootstrap) {
    NodeOptions o;
    o.name = name;
    o.raft_address = name + ":5000";
    o.api_address = name + ":8000";
    o.data_dir = (root_ / name).string();
    o.bootstrap = bootstrap;
    o.tick_ms = 10;
    o.election_ticks = 10;
    o.heartbeat_ticks = 1;
    o.snapshot_threshold = snapshot_threshold_;
    o.snapshot_trailing = 5;
    o.snapshot_chunk_bytes = 512;
    o.auto_compaction = auto_compaction_;
    o.max_forwarded_writes = max_forwarded_writes_;
    o.leader_wait_ms = leader_wait_ms_;
    return o;
  }

  Node& start(const std::string& name, bool bootstrap) {
    auto t = std::make_unique<transport::MemoryTransport>(hub_, node_id_for(name));
    // Stands in for the HTTP layer: forwards the registration to the leader.
    auto hook = [this](const MemberInfo&, const MemberInfo& self) {
      registrations_++;
      std::lock_guard lock(mu_);
      for (auto& [n, node] : nodes_) {
        if (node->status().state == "leader") node->add_member(self, 5000, [](Status) {});
      }
    };
    std::lock_guard lock(mu_);
    auto n = Node::open(options(name, bootstrap), std::move(t), hook);
    EXPECT_TRUE(n.is_ok()) << n.status().to_string();
    nodes_[name] = std::move(n).value();
    nodes_[name]->start();
    return *nodes_[name];
  }

  void kill(const std::string& name) {
    std::unique_ptr<Node> n;
    {
      std::lock_guard lock(mu_);
      n = std::move(nodes_[name]);
      nodes_.erase(name);
    }
    n->stop();
  }

  // Waits for a condition with a deadline; the condition is polled, not slept on blindly.
  template <typename F>
  bool eventually(F f, std::chrono::milliseconds limit = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (f()) return true;
      std::this_thread::sleep_for(5ms);
    }
    return f();
  }

  Node* leader() {
    for (auto& [name, n] : nodes_) {
      if (n->status().state == "leader") return n.get();
    }
    return nullptr;
  }

  // The three-voter cluster most tests start from: a bootstraps, b and c join.
  void start_three_voters() {
    start("a", true);
    start("b", false);
    start("c", false);
    ASSERT_TRUE(join("b").is_ok());
    ASSERT_TRUE(join("c").is_ok());
  }

  // A node other than l, once it follows l (nullptr if none does in time).
  Node* following(Node& l) {
    for (auto& [name, n] : nodes_) {
      if (n.get() == &l) continue;
      Node* f = n.get();
      return eventually([&] { return f->status().leader_id == l.status().id; }) ? f : nullptr;
    }
    return nullptr;
  }

  Status join(const std::string& name, bool with_api_address = true) {
    Node* l = nullptr;
    EXPECT_TRUE(eventually([&] { return (l = leader()) != nullptr; }));
    // As /join does: ask the node who it is, for its incarnation.
    std::promise<Result<MemberInfo>> probed;
    l->probe_peer(name + ":5000", 1000, [&](Result<MemberInfo> r) { probed.set_value(std::move(r)); });
    auto who = probed.get_future().get();
    std::promise<Status> p;
    l->add_member(MemberInfo{name, name + ":5000", with_api_address ? name + ":8000" : "",
                             who.is_ok() ? who->incarnation : "", ""},
                  10000, [&](Status s) { p.set_value(s); });
    return p.get_future().get();
  }

  Result<WriteResult> write(Node& n, const std::string& k, const std::string& v, int timeout_ms = 5000,
                            const std::string& idempotency_key = "") {
    fsm::Command c;
    mvcc::PutRequest put;
    put.key = k;
    put.value = v;
    c.request = std::move(put);
    c.idempotency_key = idempotency_key;
    return propose(n, std::move(c), timeout_ms);
  }

  Result<WriteResult> propose(Node& n, fsm::Command c, int timeout_ms = 5000) {
    std::promise<Result<WriteResult>> p;
    n.propose(std::move(c), timeout_ms, [&](Result<WriteResult> r) { p.set_value(std::move(r)); });
    return p.get_future().get();
  }

  Status barrier(Node& n) {
    std::promise<Status> p;
    n.read_barrier(5000, [&](Status s) { p.set_value(s); });
    return p.get_future().get();
  }

  // add_member / promote_member / remove_member by id with their refusal, synchronously.
  struct Outcome {
    Status status;
    MemberRefusal why = MemberRefusal::kNone;
  };
  Outcome add(Node& l, const std::string& name, AddMode mode, int timeout_ms = 5000) {
    std::promise<Outcome> p;
    l.add_member(MemberInfo{name, name + ":5000", "", "", ""}, mode, timeout_ms,
                 [&](Status s, MemberRefusal why) { p.set_value(Outcome{std::move(s), why}); });
    return p.get_future().get();
  }
  Outcome promote(Node& l, const std::string& name) {
    std::promise<Outcome> p;
    l.promote_member(node_id_for(name), 5000, [&](Status s, MemberRefusal why) { p.set_value(Outcome{std::move(s), why}); });
    return p.get_future().get();
  }
  Outcome remove(Node& l, const std::string& name) {
    std::promise<Outcome> p;
    l.remove_member(node_id_for(name), false, 5000,
                    [&](Status s, MemberRefusal why) { p.set_value(Outcome{std::move(s), why}); });
    return p.get_future().get();
  }
  std::string role_of(Node& n, const std::string& name) {
    for (const MemberStatus& m : n.status().members) {
      if (m.info.name == name) return m.role;
    }
    return "";
  }
  // The leader counts a voter as active only once it answered (strict reconfiguration).
  bool all_active(Node& l) {
    for (const MemberStatus& m : l.status().members) {
      if (m.role == "voter" && !(m.active && *m.active)) return false;
    }
    return true;
  }

  std::mutex mu_;  // guards nodes_ against the registration hook
  std::atomic<int> registrations_{0};
  std::shared_ptr<transport::MemoryHub> hub_ = std::make_shared<transport::MemoryHub>();
  std::map<std::string, std::unique_ptr<Node>> nodes_;
  std::filesystem::path root_;
  uint64_t snapshot_threshold_ = 8192;
  uint64_t max_forwarded_writes_ = kDefaultMaxForwardedWrites;
  int leader_wait_ms_ = 0;  // NodeOptions::leader_wait_ms: 0 is kLeaderWaitElectionTimeouts (400 ms here)
  AutoCompactionOptions auto_compaction_;
};

// A member that missed configuration changes must still hear a leader it
// has never heard of (thesis §4.1). c is cut off while d and e join; with
// a and b gone, only c's vote can elect d or e, and only that leader can
// bring c up to date. Before the node heard unknown senders while
// leaderless, c refused both and the cluster never had a leader again.
TEST_F(NodeTest, LaggingMemberHearsANewLeaderItHasNeverHeardOf) {
  start("a", true);
  for (const char* n : {"b", "c"}) {
    start(n, false);
    ASSERT_TRUE(join(n).is_ok()) << n;
  }
  hub_->isolate(node_id_for("c"), true);
  for (const char* n : {"d", "e"}) {
    start(n, false);
    ASSERT_TRUE(join(n).is_ok()) << n;
  }
  ASSERT_TRUE(write(*leader(), "k", "v").is_ok());
  kill("a");
  kill("b");
  hub_->isolate(node_id_for("c"), false);
  Node* l = nullptr;
  ASSERT_TRUE(eventually([&] { return (l = leader()) != nullptr; }, 20s)) << "no leader among c, d, e";
  ASSERT_TRUE(write(*l, "k2", "v2", 10000).is_ok());
  Node& c = *nodes_.at("c");
  EXPECT_TRUE(eventually([&] { return c.status().members.size() == 5; })) << "c never learned d and e";
  ASSERT_TRUE(barrier(c).is_ok());
  EXPECT_EQ(c.state_machine().get("k2"), std::optional<std::string>("v2"));
}

TEST_F(NodeTest, BootstrapJoinReplicateAndReadEverywhere) {
  ASSERT_NO_FATAL_FAILURE(start_three_voters());
  Node* l = leader();
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(l->status().members.size(), 3u);
  auto r = write(*l, "foo", "bar");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  // Linearizable reads: after an acknowledged write, a barrier on any node sees it.
  for (auto& [name, n] : nodes_) {
    ASSERT_TRUE(barrier(*n).is_ok()) << name;
    EXPECT_EQ(n->state_machine().get("foo"), "bar") << name;
  }
  // Idempotent join.
  EXPECT_TRUE(join("b").is_ok());
}

// A node added by raft address only registers its API address, so every node can forward to it.
TEST_F(NodeTest, JoinedByRaftAddressOnlyRegistersItsApiAddress) {
  start("a", true);
  start("b", false);
  ASSERT_TRUE(join("b", false).is_ok());
  auto api_of_b = [&] {
    for (const MemberStatus& m : nodes_["a"]->status().members) {
      if (m.info.name == "b") return m.info.api_address;
    }
    return std::string();
  };
  ASSERT_TRUE(eventually([&] { return api_of_b() == "b:8000"; }));
  EXPECT_GE(registrations_.load(), 1);
}

// Forwarded writes (node/forward_waiters.h): a follower's write goes to the
// leader as a Raft proposal and is answered once the follower ITSELF applied
// it, with its own result, so a read there that follows sees it.
TEST_F(NodeTest, FollowerWriteIsForwardedAndAnsweredOnItsOwnApply) {
  ASSERT_NO_FATAL_FAILURE(start_three_voters());
  Node* l = leader();
  ASSERT_NE(l, nullptr);
  Node* follower = following(*l);
  ASSERT_NE(follower, nullptr);
  auto r = write(*follower, "k", "v", 5000, "key-1");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_GT(r->index, 0u);
  ASSERT_TRUE(r->status.is_ok());
  EXPECT_FALSE(r->duplicate);
  // Applied here before the answer: no barrier needed to read it back.
  EXPECT_GE(follower->state_machine().applied_index(), r->index);
  EXPECT_EQ(follower->state_machine().get("k"), std::optional<std::string>("v"));
  const auto* put = std::get_if<mvcc::PutResponse>(&r->response);
  ASSERT_NE(put, nullptr);
  EXPECT_EQ(put->header.revision, follower->state_machine().revision());
  // The same idempotency key on the leader: the first result, not applied again.
  auto again = write(*l, "k", "other", 5000, "key-1");
  ASSERT_TRUE(again.is_ok()) << again.status().to_string();
  EXPECT_TRUE(again->duplicate);
  ASSERT_TRUE(barrier(*l).is_ok());
  EXPECT_EQ(l->state_machine().get("k"), std::optional<std::string>("v"));
  // A write at the leader answers by index as before; both kinds mix.
  ASSERT_TRUE(write(*l, "k2", "v2").is_ok());
  ASSERT_TRUE(write(*follower, "k3", "v3").is_ok());
  EXPECT_EQ(follower->state_machine().get("k2"), std::optional<std::string>("v2"));
}

// A follower whose leader is gone cannot know whether its forwarded
// proposal was appended: the waiter times out with "outcome unknown"
// (504 / etcd's "request timed out"), and nothing re-sends the proposal.
TEST_F(NodeTest, FollowerWhoseLeaderDiesTimesOutAsUnknown) {
  ASSERT_NO_FATAL_FAILURE(start_three_voters());
  Node* old = leader();
  ASSERT_NE(old, nullptr);
  Node* follower = following(*old);
  ASSERT_NE(follower, nullptr);
  hub_->isolate(old->status().id, true);
  // Within the election timeout the follower still takes the old node for its leader.
  auto lost = write(*follower, "lost", "x", 300);
  ASSERT_FALSE(lost.is_ok());
  EXPECT_EQ(lost.status().code(), StatusCode::kTimeout) << lost.status().to_string();
  EXPECT_NE(lost.status().message().find("outcome unknown"), std::string::npos) << lost.status().message();
  // The others elect a leader; the follower's writes work again and the lost one never appears.
  ASSERT_TRUE(eventually([&] {
    const NodeStatus st = follower->status();
    return st.leader_id != 0 && st.leader_id != old->status().id;
  }));
  ASSERT_TRUE(eventually([&] { return write(*follower, "after", "y", 1000).is_ok(); }));
  hub_->isolate(old->status().id, false);
  ASSERT_TRUE(eventually([&] { return barrier(*old).is_ok(); }));
  for (auto& [name, n] : nodes_) {
    ASSERT_TRUE(barrier(*n).is_ok()) << name;
    EXPECT_EQ(n->state_machine().get("lost"), std::nullopt) << name;
    EXPECT_EQ(n->state_machine().get("after"), std::optional<std::string>("y")) << name;
  }
}

// A linearizable read a follower sent to a leader that then dies is asked
// again of the next leader and succeeds within its deadline; it used to wait
// the whole deadline for the dead leader's answer and fail.
TEST_F(NodeTest, FollowerReadWhoseLeaderDiesIsAskedOfTheNextLeader) {
  ASSERT_NO_FATAL_FAILURE(start_three_voters());
  Node* old = leader();
  ASSERT_NE(old, nullptr);
  Node* follower = following(*old);
  ASSERT_NE(follower, nullptr);
  ASSERT_TRUE(write(*old, "k", "v").is_ok());
  hub_->isolate(old->status().id, true);
  std::promise<Status> p;
  follower->read_barrier(15000, [&](Status s) { p.set_value(s); });
  const Status s = p.get_future().get();
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  EXPECT_NE(follower->status().leader_id, old->status().id);
  EXPECT_EQ(follower->state_machine().get("k"), std::optional<std::string>("v"));
  hub_->isolate(old->status().id, false);
}

// NodeOptions::max_forwarded_writes: beyond it a follower refuses at once
// rather than queueing without bound; a follower with no leader waits for
// one for its leader wait only, then refuses (not times out).
TEST_F(NodeTest, FollowerBoundsItsForwardedWritesAndRefusesWithoutALeader) {
  max_forwarded_writes_ = 2;
  start("a", true);
  start("b", false);
  ASSERT_TRUE(join("b").is_ok());
  Node& a = *nodes_["a"];
  Node& b = *nodes_["b"];
  ASSERT_TRUE(eventually([&] { return b.status().leader_id == a.status().id && a.status().state == "leader"; }));
  hub_->isolate(a.status().id, true);  // b's forwards go unanswered; with two voters nobody else can lead
  std::vector<std::promise<Result<WriteResult>>> got(3);
  for (int i = 0; i < 3; ++i) {
    fsm::Command c;
    c.request = mvcc::PutRequest{"k" + std::to_string(i), "v"};
    b.propose(std::move(c), 2000, [&, i](Result<WriteResult> r) { got[i].set_value(std::move(r)); });
  }
  auto third = got[2].get_future();
  ASSERT_EQ(third.wait_for(1s), std::future_status::ready) << "the write over the limit waited";
  Result<WriteResult> r = third.get();
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(r.status().message(), kErrTooManyForwardedWrites);
  for (int i = 0; i < 2; ++i) {
    Result<WriteResult> w = got[i].get_future().get();
    EXPECT_EQ(w.status().code(), StatusCode::kTimeout) << w.status().to_string();
  }
  // Once b no longer knows a leader, a write waits the leader wait (4
  // election timeouts: 400 ms), then is refused, not timed out at 5 s.
  ASSERT_TRUE(eventually([&] { return b.status().leader_id == 0; }));
  const auto t0 = std::chrono::steady_clock::now();
  auto none = write(b, "k", "v", 5000);
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(none.status().code(), StatusCode::kUnavailable) << none.status().to_string();
  EXPECT_GE(waited, 400ms);
  EXPECT_LT(waited, 4s);
  hub_->isolate(a.status().id, false);
}

// node.h, "No leader": a write or linearizable read that arrives while no
// member leads (here: all cut off from each other, so elections fail) waits
// for a leader and then goes through, as an etcd proposal waits; before, it
// was refused at once and every client had to retry through each election.
TEST_F(NodeTest, WritesAndReadsWithoutALeaderWaitForTheNextOne) {
  leader_wait_ms_ = 20000;  // longer than any election here, even under sanitizers
  ASSERT_NO_FATAL_FAILURE(start_three_voters());
  ASSERT_TRUE(write(*leader(), "before", "1").is_ok());
  for (const char* n : {"a", "b", "c"}) hub_->isolate(node_id_for(n), true);
  ASSERT_TRUE(eventually([&] {
    for (auto& [name, n] : nodes_) {
      if (n->status().leader_id != 0) return false;
    }
    return true;
  })) << "a member still names a leader while every member is cut off";
  std::promise<Result<WriteResult>> wrote;
  std::promise<Status> read;
  fsm::Command c;
  c.request = mvcc::PutRequest{"during", "2"};
  nodes_["b"]->propose(std::move(c), 20000, [&](Result<WriteResult> r) { wrote.set_value(std::move(r)); });
  nodes_["c"]->read_barrier(20000, [&](Status st) { read.set_value(std::move(st)); });
  auto wrote_f = wrote.get_future();
  auto read_f = read.get_future();
  // Still no leader: both wait (refused at once before).
  EXPECT_EQ(wrote_f.wait_for(300ms), std::future_status::timeout);
  EXPECT_EQ(read_f.wait_for(0ms), std::future_status::timeout);
  for (const char* n : {"a", "b", "c"}) hub_->isolate(node_id_for(n), false);
  Result<WriteResult> w = wrote_f.get();
  ASSERT_TRUE(w.is_ok()) << w.status().to_string();
  Status r = read_f.get();
  ASSERT_TRUE(r.is_ok()) << r.to_string();
  EXPECT_EQ(nodes_["b"]->state_machine().get("during"), "2") << "answered before it applied the write";
  EXPECT_EQ(nodes_["c"]->state_machine().get("before"), "1");
}

// Acknowledged writes survive a restart of every node from its data dir.
TEST_F(NodeTest, RestartResumesFromDisk) {
  ASSERT_NO_FATAL_FAILURE(start_three_voters());
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(write(*leader(), "k" + std::to_string(i), "v").is_ok());
  for (const char* n : {"a", "b", "c"}) kill(n);
  start("a", true);  // same command incl. bootstrap: resumes
  start("b", false);
  start("c", false);
  ASSERT_TRUE(eventually([&] { return leader() != nullptr; }));
  Node& b = *nodes_["b"];
  ASSERT_TRUE(eventually([&] { return barrier(b).is_ok(); }));
  for (int i = 0; i < 20; ++i) EXPECT_EQ(b.state_machine().get("k" + std::to_string(i)), "v");
  EXPECT_EQ(leader()->status().members.size(), 3u);
}

// §7: with a low threshold nodes snapshot and compact; a new node catches up by InstallSnapshot.
TEST_F(NodeTest, SnapshotsCompactAndNewNodeCatchesUp) {
  snapshot_threshold_ = 20;
  start("a", true);
  start("b", false);
  ASSERT_TRUE(join("b").is_ok());
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(write(*leader(), "k" + std::to_string(i), std::string(50, 'x')).is_ok());
  ASSERT_TRUE(eventually([&] { return leader()->status().snapshot_index >= 60; }));
  start("c", false);
  ASSERT_TRUE(join("c").is_ok());
  Node& c = *nodes_["c"];
  ASSERT_TRUE(barrier(c).is_ok());
  EXPECT_GT(c.status().snapshot_index, 0u);  // it was brought up by InstallSnapshot, not the log
  for (int i = 0; i < 100; ++i) EXPECT_EQ(c.state_machine().get("k" + std::to_string(i)), std::string(50, 'x'));
  // And it restarts from the installed snapshot.
  kill("c");
  Node& c2 = start("c", false);
  ASSERT_TRUE(eventually([&] { return barrier(c2).is_ok(); }));
  EXPECT_EQ(c2.state_machine().get("k99"), std::string(50, 'x'));
}

// node/snapshot_policy.h, wired: once the state passes the size rule's
// floor, the entry threshold alone no longer starts a snapshot; enough new
// log (a quarter of the last snapshot) does.
TEST_F(NodeTest, ALargeStateSnapshotsOnlyOnceTheLogIsAQuarterOfIt) {
  snapshot_threshold_ = 20;
  start("a", true);
  ASSERT_TRUE(eventually([&] { return leader() != nullptr; }));
  Node& a = *nodes_["a"];
  const std::string big(512 * 1024, 'b');
  for (int i = 0; i < 12; ++i) ASSERT_TRUE(write(a, "big" + std::to_string(i), big).is_ok());  // 6 MiB
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(write(a, "s" + std::to_string(i), "v").is_ok());
  ASSERT_TRUE(eventually([&] { return a.status().snapshot_index > 0; }));
  const uint64_t first = a.status().snapshot_index;
  // Sixty small writes are three thresholds' worth, but a few KiB against a
  // 6 MiB snapshot. The restart shows which snapshot files were written: a
  // stop lets a snapshot in progress finish.
  for (int i = 0; i < 60; ++i) ASSERT_TRUE(write(a, "t" + std::to_string(i), "v").is_ok());
  kill("a");
  Node& a2 = start("a", true);
  ASSERT_TRUE(eventually([&] { return barrier(a2).is_ok(); }));
  EXPECT_EQ(a2.status().snapshot_index, first);
  // 2 MiB more log (over a quarter of ~6 MiB), and the threshold: a snapshot.
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(write(a2, "big" + std::to_string(i), big).is_ok());
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(write(a2, "u" + std::to_string(i), "v").is_ok());
  ASSERT_TRUE(eventually([&] { return a2.status().snapshot_index > first; }));
}

// Maintenance.Defragment: a snapshot now, whatever the threshold, and the
// log it covers dropped (but the trailing entries); with nothing new since,
// answered at once; the member restarts from that snapshot.
TEST_F(NodeTest, DefragmentSnapshotsNowAndDropsTheLogItCovers) {
  start("a", true);
  ASSERT_TRUE(eventually([&] { return leader() != nullptr; }));
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(write(*leader(), "k" + std::to_string(i), "v").is_ok());
  Node& a = *nodes_["a"];
  EXPECT_EQ(a.status().snapshot_index, 0u);  // the threshold (8192) is far
  auto defrag = [&] {
    std::promise<Result<Node::DefragResult>> p;
    a.defragment([&](Result<Node::DefragResult> r) { p.set_value(std::move(r)); });
    return p.get_future().get();
  };
  const uint64_t applied = a.status().applied_index;
  auto r = defrag();
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_GE(r->snapshot_index, applied);
  EXPECT_EQ(r->log_first_index, r->snapshot_index - 5 + 1);  // snapshot_trailing 5
  ASSERT_TRUE(eventually([&] { return a.status().snapshot_index == r->snapshot_index; }));
  auto again = defrag();
  ASSERT_TRUE(again.is_ok());
  EXPECT_EQ(again->snapshot_index, r->snapshot_index);
  kill("a");
  Node& a2 = start("a", true);
  ASSERT_TRUE(eventually([&] { return barrier(a2).is_ok(); }));
  EXPECT_EQ(a2.status().snapshot_index, r->snapshot_index);
  for (int i = 0; i < 40; ++i) EXPECT_EQ(a2.state_machine().get("k" + std::to_string(i)), "v");
}

// A leader that loses its majority stops acknowledging; the majority elects a new leader.
TEST_F(NodeTest, IsolatedLeaderIsReplaced) {
  ASSERT_NO_FATAL_FAILURE(start_three_voters());
  Node* old = leader();
  ASSERT_NE(old, nullptr);
  ASSERT_TRUE(write(*old, "before", "1").is_ok());
  hub_->isolate(old->status().id, true);
  auto stuck = write(*old, "lost", "x", 500);
  EXPECT_FALSE(stuck.is_ok());
  Node* fresh = nullptr;
  ASSERT_TRUE(eventually([&] {
    for (auto& [name, n] : nodes_) {
      if (n.get() != old && n->status().state == "leader") fresh = n.get();
    }
    return fresh != nullptr;
  }));
  ASSERT_TRUE(write(*fresh, "after", "2").is_ok());
  hub_->isolate(old->status().id, false);
  ASSERT_TRUE(eventually([&] { return barrier(*old).is_ok(); }));
  EXPECT_EQ(old->state_machine().get("before"), "1");
  EXPECT_EQ(old->state_machine().get("after"), "2");
}

// Opens a node on name's data dir without starting it; the status when it is refused.
Status open_status(const NodeOptions& o) {
  auto n = Node::open(o, std::make_unique<transport::MemoryTransport>(std::make_shared<transport::MemoryHub>(),
                                                                       node_id_for(o.name)));
  return n.is_ok() ? Status::ok() : n.status();
}

// Issue 12: /healthz's Raft-loop age counts from start(), not from open():
// the time a node spends between the two (replaying a large WAL, or kvnode
// starting its listeners) is no stall of the loop.
TEST_F(NodeTest, RaftLoopAgeCountsFromStartNotOpen) {
  auto n = Node::open(options("a", true), std::make_unique<transport::MemoryTransport>(hub_, node_id_for("a")));
  ASSERT_TRUE(n.is_ok()) << n.status().to_string();
  constexpr auto kOpenToStart = std::chrono::milliseconds(1500);  // stands in for a slow replay
  std::this_thread::sleep_for(kOpenToStart);
  n.value()->start();
  EXPECT_LT(n.value()->status().raft_loop_age_ms, 1000) << "the age included the time before start()";
  n.value()->stop();
}

// Issue 7 item 8: a second node on a data dir in use is refused, naming the holder.
TEST_F(NodeTest, SecondNodeOnTheSameDataDirIsRefused) {
  start("a", true);
  Status s = open_status(options("a", true));
  EXPECT_EQ(s.code(), StatusCode::kConflict) << s.to_string();
  EXPECT_NE(s.message().find("is in use by another kvnode (pid " + std::to_string(::getpid()) + ")"),
            std::string::npos)
      << s.message();
  kill("a");
  EXPECT_TRUE(open_status(options("a", true)).is_ok());  // the lock went with the node
}

// Issue 7 item 11: a hard state whose commit is beyond the log is refused at open (the core used to abort).
TEST_F(NodeTest, CommitBeyondTheLogIsRefusedNotAborted) {
  start("a", true);
  ASSERT_TRUE(eventually([&] { return leader() != nullptr; }));
  ASSERT_TRUE(write(*nodes_["a"], "k", "v").is_ok());
  kill("a");
  {
    auto store = storage::Wal::open((root_ / "a").string(), storage::WalOptions{});
    ASSERT_TRUE(store.is_ok());
    auto hs = store.value()->load_hard_state();
    ASSERT_TRUE(hs.is_ok());
    raft::HardState bad = hs.value();
    bad.commit = 1000;
    ASSERT_TRUE(store.value()->persist({}, bad, false).is_ok());
  }
  Status s = open_status(options("a", true));
  EXPECT_EQ(s.code(), StatusCode::kCorrupt) << s.to_string();
  EXPECT_NE(s.message().find("commit index 1000 is beyond the last log entry"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find((root_ / "a" / "wal").string()), std::string::npos) << s.message();
}

// Issue 7 item 11: a deleted snapshot file behind a compacted log is refused (the core used to abort).
TEST_F(NodeTest, MissingSnapshotFileIsRefusedNotAborted) {
  snapshot_threshold_ = 20;
  start("a", true);
  ASSERT_TRUE(eventually([&] { return leader() != nullptr; }));
  for (int i = 0; i < 60; ++i) ASSERT_TRUE(write(*nodes_["a"], "k" + std::to_string(i), "v").is_ok());
  ASSERT_TRUE(eventually([&] { return nodes_["a"]->status().snapshot_index >= 40; }));
  kill("a");
  int removed = 0;
  for (const auto& de : std::filesystem::directory_iterator(root_ / "a")) {
    if (de.path().extension() == ".snap") removed += std::filesystem::remove(de.path()) ? 1 : 0;
  }
  ASSERT_GE(removed, 1);
  Status s = open_status(options("a", true));
  EXPECT_EQ(s.code(), StatusCode::kCorrupt) << s.to_string();
  EXPECT_NE(s.message().find("snapshot file is missing"), std::string::npos) << s.message();
}

// Issue 7 item 9/11: the log deleted while node_meta remains: this member lost its state.
TEST_F(NodeTest, DeletedLogStoreIsRefused) {
  start("a", true);
  ASSERT_TRUE(eventually([&] { return leader() != nullptr; }));
  ASSERT_TRUE(write(*nodes_["a"], "k", "v").is_ok());
  kill("a");
  std::filesystem::remove_all(root_ / "a" / "wal");
  Status s = open_status(options("a", true));
  EXPECT_EQ(s.code(), StatusCode::kCorrupt) << s.to_string();
  EXPECT_NE(s.message().find("is missing: this member lost its state"), std::string::npos) << s.message();
  EXPECT_FALSE(std::filesystem::exists(root_ / "a" / "wal"));  // no empty log was made in its place
}

// A data dir made before node_meta existed gets one at its first start, with its state intact.
TEST_F(NodeTest, DataDirWithoutNodeMetaIsMigrated) {
  start("a", true);
  ASSERT_TRUE(eventually([&] { return leader() != nullptr; }));
  ASSERT_TRUE(write(*nodes_["a"], "k", "v").is_ok());
  kill("a");
  auto before = storage::read_node_meta((root_ / "a").string());
  ASSERT_TRUE(before.is_ok() && before.value().has_value());
  std::filesystem::remove(root_ / "a" / storage::kNodeMetaFileName);
  Node& a = start("a", true);
  ASSERT_TRUE(eventually([&] { return barrier(a).is_ok(); }));
  EXPECT_EQ(a.state_machine().get("k"), "v");
  auto after = storage::read_node_meta((root_ / "a").string());
  ASSERT_TRUE(after.is_ok() && after.value().has_value());
  EXPECT_EQ(after.value()->name, "a");
  EXPECT_NE(after.value()->incarnation, before.value()->incarnation);
  EXPECT_EQ(a.incarnation(), after.value()->incarnation);
  // And it is kept from then on.
  kill("a");
  EXPECT_EQ(start("a", true).incarnation(), after.value()->incarnation);
}

// Issue 7, item 5: dead joins cannot pile up; one learner waits at a time.
TEST_F(NodeTest, SecondPendingLearnerIsRefused) {
  start("a", true);
  Node& a = *nodes_["a"];
  ASSERT_TRUE(eventually([&] { return leader() != nullptr; }));
  auto add = [&](const std::string& name, int timeout_ms) {
    std::promise<Status> p;
    a.add_member(MemberInfo{name, name + ":5000", "", "", ""}, timeout_ms, [&](Status s) { p.set_value(s); });
    return p.get_future().get();
  };
  EXPECT_EQ(add("dead1", 200).code(), StatusCode::kTimeout);  // a learner that never catches up
  Status second = add("dead2", 200);
  EXPECT_EQ(second.code(), StatusCode::kUnavailable) << second.to_string();
  EXPECT_NE(second.message().find("dead1"), std::string::npos) << second.message();
  EXPECT_EQ(a.status().members.size(), 2u);
  std::promise<Status> removed;
  a.remove_member("dead1", false, 5000, [&](Status s) { removed.set_value(s); });
  ASSERT_TRUE(removed.get_future().get().is_ok());
  EXPECT_EQ(add("dead2", 200).code(), StatusCode::kTimeout);  // admitted now
}

// Issue 7, item 9: a member whose data dir was wiped has a new incarnation;
// the transport refuses it, so it never acts as the member it was, and
// joining it again is refused until it is removed.
TEST_F(NodeTest, WipedMemberIsRefusedUntilRemovedAndAddedAgain) {
  ASSERT_NO_FATAL_FAILURE(start_three_voters());
  ASSERT_TRUE(write(*leader(), "before", "1").is_ok());
  if (leader() == nodes_["c"].get()) {
    // Keep the test about a follower: hand leadership away by isolating c.
    hub_->isolate(node_id_for("c"), true);
    ASSERT_TRUE(eventually([&] { Node* l = leader(); return l != nullptr && l != nodes_["c"].get(); }));
    hub_->isolate(node_id_for("c"), false);
  }
  kill("c");
  std::filesystem::remove_all(root_ / "c");
  const uint64_t refused_before = hub_->refused();
  Node& c = start("c", false);
  ASSERT_TRUE(write(*leader(), "while-wiped", "2").is_ok());
  ASSERT_TRUE(eventually([&] { return hub_->refused() > refused_before; }));
  EXPECT_TRUE(c.status().members.empty()) << "the wiped node was given the log";
  Status again = join("c");
  EXPECT_EQ(again.code(), StatusCode::kConflict) << again.to_string();
  EXPECT_NE(again.message().find("wiped"), std::string::npos) << again.message();
  std::promise<Status> removed;
  leader()->remove_member("c", false, 5000, [&](Status s) { removed.set_value(s); });
  ASSERT_TRUE(removed.get_future().get().is_ok());
  ASSERT_TRUE(join("c").is_ok());
  ASSERT_TRUE(eventually([&] { return barrier(c).is_ok() && c.state_machine().get("while-wiped") == "2"; }));
}

// Issue 7, item 5: strict reconfiguration. With one of three unreachable,
// removing a live follower would leave one active voter of two: refused
// unless forced; forced, it commits once the unreachable one is back.
TEST_F(NodeTest, RemovalThatWouldLoseQuorumNeedsForce) {
  ASSERT_NO_FATAL_FAILURE(start_three_voters());
  Node* l = leader();
  ASSERT_NE(l, nullptr);
  std::vector<std::string> others;
  for (auto& [name, n] : nodes_) {
    if (n.get() != l) others.push_back(name);
  }
  const std::string down = others[0], other = others[1];
  hub_->isolate(node_id_for(down), true);
  ASSERT_TRUE(eventually([&] {
    for (const MemberStatus& m : l->status().members) {
      if (m.info.name == down) return m.active.has_value() && !*m.active;
    }
    return false;
  }));
  std::promise<Status> refused;
  l->remove_member(other, false, 5000, [&](Status s) { refused.set_value(s); });
  Status r = refused.get_future().get();
  EXPECT_EQ(r.code(), StatusCode::kUnavailable) << r.to_string();
  EXPECT_NE(r.message().find("force=true"), std::string::npos) << r.message();
  EXPECT_EQ(l->status().members.size(), 3u);
  // force=true skips the check. The member comes back first: with it still
  // cut off, the new configuration {leader, down} has no quorum, the leader
  // steps down at its next check-quorum round, and the removed member (which
  // never got the change) can win the next election and drop it; whether it
  // does was a race against the machine's load.
  hub_->isolate(node_id_for(down), false);
  // ... and follows the leader again, caught up, before the removal: until
  // the leader hears from it, the configuration {leader, down} fails the
  // leader's check-quorum round, and a `down` that has not heard from a
  // leader grants the removed member's (pre-)votes (thesis §4.2.3); either
  // way the removal could be lost to an election (1 run in 25 under load).
  const raft::NodeId leader_id = l->status().id;
  const uint64_t committed = l->status().commit_index;
  ASSERT_TRUE(eventually([&] {
    const NodeStatus st = nodes_[down]->status();
    if (st.leader_id != leader_id || st.applied_index < committed) return false;
    for (const MemberStatus& m : l->status().members) {
      if (m.info.name == down) return m.active.has_value() && *m.active;
    }
    return false;
  }));
  std::promise<Status> forced;
  l->remove_member(other, true, 10000, [&](Status s) { forced.set_value(s); });
  EXPECT_TRUE(forced.get_future().get().is_ok());
}

// A node hears strangers while it is outside its own configuration: the
// snapshot that brings it up may predate both its joining and the leader's,
// so the leader adding it is in no configuration it has. With "only while
// it has no configuration at all" such a node refused its leader and never
// caught up (the fault test, seed 19074).
TEST_F(NodeTest, NodeCaughtUpFromASnapshotWithoutItsLeaderStillJoins) {
  snapshot_threshold_ = 20;
  start("a", true);
  ASSERT_TRUE(eventually([&] { return leader() != nullptr; }));
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(write(*leader(), std::string("k").append(std::to_string(i)), "v").is_ok());
  ASSERT_TRUE(eventually([&] { return nodes_["a"]->status().snapshot_index >= 20; }));  // configuration {a}
  start("b", false);
  ASSERT_TRUE(join("b").is_ok());  // b installs a's snapshot
  start("c", false);
  ASSERT_TRUE(join("c").is_ok());
  kill("a");  // hands leadership to b or c, whose latest snapshot holds only {a}
  ASSERT_TRUE(eventually([&] { return leader() != nullptr; }));
  Node& d = start("d", false);
  ASSERT_TRUE(join("d").is_ok());
  ASSERT_TRUE(eventually([&] { return barrier(d).is_ok(); }));
  EXPECT_EQ(d.state_machine().get("k39"), "v");
}

// Members recorded without an incarnation (added while they could not be
// probed, or before incarnations existed) get theirs recorded by the
// leader, so a later wipe of their data dir is caught too.
TEST_F(NodeTest, LeaderRecordsMissingIncarnations) {
  start("a", true);
  start("b", false);
  Node* l = nullptr;
  ASSERT_TRUE(eventually([&] { return (l = leader()) != nullptr; }));
  std::promise<Status> p;
  l->add_member(MemberInfo{"b", "b:5000", "b:8000", "", ""}, 10000, [&](Status s) { p.set_value(s); });
  ASSERT_TRUE(p.get_future().get().is_ok());
  auto meta_b = storage::read_node_meta((root_ / "b").string());
  ASSERT_TRUE(meta_b.is_ok() && meta_b.value().has_value());
  auto incarnation_of = [&](const std::string& name) {
    for (const MemberStatus& m : l->status().members) {
      if (m.info.name == name) return m.info.incarnation;
    }
    return std::string();
  };
  ASSERT_TRUE(eventually([&] { return incarnation_of("b") == meta_b.value()->incarnation; }));
  EXPECT_EQ(incarnation_of("a").size(), 32u);
}

// The cluster id is chosen once, at bootstrap, and never changes: members
// added later inherit it, and it survives the founder's removal, restarts
// and a snapshot install (docs/design-notes.md, "Cluster identity").
TEST_F(NodeTest, ClusterIdIsFixedAtBootstrapAndSharedByEveryMember) {
  snapshot_threshold_ = 20;
  Node& a = start("a", true);
  ASSERT_TRUE(eventually([&] { return leader() != nullptr; }));
  const uint64_t id = a.status().cluster_id;
  ASSERT_NE(id, 0u);
  start("b", false);
  ASSERT_TRUE(join("b").is_ok());
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(write(*leader(), "k" + std::to_string(i), "v").is_ok());
  ASSERT_TRUE(eventually([&] { return nodes_["a"]->status().snapshot_index >= 20; }));
  Node& c = start("c", false);
  ASSERT_TRUE(join("c").is_ok());  // c installs a snapshot
  for (auto& [name, n] : nodes_) {
    ASSERT_TRUE(eventually([&] { return n->status().cluster_id == id; })) << name;
    for (const MemberStatus& m : n->status().members) EXPECT_EQ(m.info.cluster_id, id) << m.info.name;
  }
  // Without the founder: still the same id, also after a restart.
  ASSERT_TRUE(eventually([&] { return all_active(*leader()); }));
  ASSERT_TRUE(remove(*leader(), "a").status.is_ok());
  kill("a");
  ASSERT_TRUE(eventually([&] { return leader() != nullptr; }));
  EXPECT_EQ(c.status().cluster_id, id);
  kill("c");
  EXPECT_EQ(start("c", false).status().cluster_id, id);
  // Another bootstrap founds another cluster.
  EXPECT_NE(start("z", true).status().cluster_id, id);
}

// A data dir written before format 4 has no cluster id: every node derives
// the old header value from the member ids, nothing is rewritten at once (a
// node of the older version could not read format 4), members added later
// record it, and before a removal it is recorded in a member that stays, so
// the id never moves.
TEST_F(NodeTest, ClusterIdOfAnOlderDataDirIsDerivedAndKeptAcrossChanges) {
  raft::Membership m;
  for (const char* name : {"a", "b"}) {
    std::string v3;  // the MemberInfo as format 3 wrote it
    put_u8(v3, 3);
    for (const std::string& f : {std::string(name), std::string(name) + ":5000", std::string(name) + ":8000",
                                 std::string(), std::string()}) {
      put_string32(v3, f);
    }
    m.members.push_back(raft::Member{node_id_for(name), raft::MemberRole::kVoter, v3});
  }
  m = *raft::decode_membership(raft::encode_membership(m));  // sorted by id
  const uint64_t derived = cluster_id_of(m);
  for (const char* name : {"a", "b"}) {
    std::filesystem::create_directories(root_ / name);
    auto store = storage::LogStore::open((root_ / name).string(), storage::LogStoreOptions{});
    ASSERT_TRUE(store.is_ok()) << store.status().to_string();
    const raft::InitialState init = raft::bootstrap_state(m);
    ASSERT_TRUE(store.value()->persist(init.entries, init.hard_state, false).is_ok());
  }
  start("a", false);
  start("b", false);
  ASSERT_TRUE(eventually([&] { return leader() != nullptr; }));
  Node* l = leader();
  EXPECT_EQ(l->status().cluster_id, derived);
  for (const MemberStatus& x : l->status().members) EXPECT_EQ(x.info.cluster_id, 0u) << x.info.name;
  Node& c = start("c", false);
  ASSERT_TRUE(join("c").is_ok());
  EXPECT_EQ(l->status().cluster_id, derived);  // derived from {a, b, c} it would be another value
  ASSERT_TRUE(eventually([&] { return c.status().cluster_id == derived; }));
  const std::string other = l == nodes_["a"].get() ? "b" : "a";
  const std::string self = other == "a" ? "b" : "a";
  ASSERT_TRUE(eventually([&] { return all_active(*l); }));
  const Outcome removed = remove(*l, other);
  ASSERT_TRUE(removed.status.is_ok()) << removed.status.to_string();
  EXPECT_EQ(l->status().cluster_id, derived);
  ASSERT_TRUE(eventually([&] { return all_active(*l); }));
  ASSERT_TRUE(remove(*l, "c").status.is_ok());
  // Alone now, and its own info records the id ({self} would derive another one).
  const std::vector<MemberStatus> left = l->status().members;
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].info.name, self);
  EXPECT_EQ(left[0].info.cluster_id, derived);
  EXPECT_EQ(l->status().cluster_id, derived);
  raft::Membership alone;
  alone.members.push_back(raft::Member{node_id_for(self), raft::MemberRole::kVoter, ""});
  EXPECT_NE(cluster_id_of(alone), derived);
}

// etcd's MemberAdd --learner: the learner is answered at once, is never
// promoted by itself, and becomes a voter only through promote_member; its
// own registration (a /join with its addresses) does not promote it.
TEST_F(NodeTest, ExplicitLearnerWaitsForAnExplicitPromotion) {
  Node& a = start("a", true);
  ASSERT_TRUE(eventually([&] { return leader() != nullptr; }));
  Outcome added = add(a, "b", AddMode::kLearner);
  ASSERT_TRUE(added.status.is_ok()) << added.status.to_string();
  EXPECT_EQ(role_of(a, "b"), "learner");
  EXPECT_EQ(add(a, "c", AddMode::kLearner).why, MemberRefusal::kTooManyLearners);
  EXPECT_EQ(promote(a, "b").why, MemberRefusal::kLearnerBehind);  // not started: nothing replicated
  EXPECT_EQ(promote(a, "a").why, MemberRefusal::kNotLearner);
  EXPECT_EQ(promote(a, "nobody").why, MemberRefusal::kNotFound);
  Node& b = start("b", false);
  // Registered (its API address recorded) and caught up, it is still a learner.
  ASSERT_TRUE(eventually([&] {
    for (const MemberStatus& m : a.status().members) {
      if (m.info.name == "b") return m.info.api_address == "b:8000";
    }
    return false;
  }));
  ASSERT_TRUE(write(a, "k", "v").is_ok());
  ASSERT_TRUE(eventually([&] { return b.state_machine().get("k") == "v"; }));
  EXPECT_EQ(role_of(a, "b"), "learner");
  Outcome promoted;
  ASSERT_TRUE(eventually([&] {
    promoted = promote(a, "b");
    return promoted.why != MemberRefusal::kLearnerBehind;
  }));
  ASSERT_TRUE(promoted.status.is_ok()) << promoted.status.to_string();
  EXPECT_EQ(role_of(a, "b"), "voter");
  EXPECT_EQ(promote(a, "b").why, MemberRefusal::kNotLearner);
  // etcd's MemberAdd refuses a member that exists, by address or by name.
  EXPECT_EQ(add(a, "b", AddMode::kVoterAsync).why, MemberRefusal::kAddressTaken);
}

// etcd's MemberAdd without --learner: answered once the add is applied; the
// leader promotes it once it has caught up, with nobody waiting for it.
TEST_F(NodeTest, MemberAddedAsVoterIsPromotedOnceCaughtUp) {
  Node& a = start("a", true);
  ASSERT_TRUE(eventually([&] { return leader() != nullptr; }));
  Outcome added = add(a, "b", AddMode::kVoterAsync);
  ASSERT_TRUE(added.status.is_ok()) << added.status.to_string();
  EXPECT_EQ(role_of(a, "b"), "learner");
  // A second one waits for the first (kMaxPendingLearners).
  EXPECT_EQ(add(a, "c", AddMode::kVoterAsync).why, MemberRefusal::kPendingLearner);
  start("b", false);
  ASSERT_TRUE(eventually([&] { return role_of(a, "b") == "voter"; }));
  ASSERT_TRUE(add(a, "c", AddMode::kVoterAsync).status.is_ok());
  start("c", false);
  ASSERT_TRUE(eventually([&] { return role_of(a, "c") == "voter"; }));
  // With c cut off (a and b keep the quorum), an add is refused as etcd's "unhealthy cluster".
  ASSERT_EQ(leader(), &a);
  hub_->isolate(node_id_for("c"), true);
  ASSERT_TRUE(eventually([&] {
    for (const MemberStatus& m : a.status().members) {
      if (m.info.name == "c") return m.active.has_value() && !*m.active;
    }
    return false;
  }));
  ASSERT_EQ(leader(), &a);
  EXPECT_EQ(add(a, "d", AddMode::kLearner).why, MemberRefusal::kUnhealthy);
  hub_->isolate(node_id_for("c"), false);
}

// Raft makes one membership change at a time (thesis §4.1): a call made
// while another is uncommitted waits for it instead of failing. Before, the
// second call failed with "a membership change is not yet committed" (the
// etcd test saw it as a MemberAdd right after a registration).
TEST_F(NodeTest, MembershipCallWaitsForTheChangeBeforeIt) {
  Node& a = start("a", true);
  ASSERT_TRUE(eventually([&] { return leader() != nullptr; }));
  std::promise<Outcome> added, moved;
  a.add_member(MemberInfo{"b", "b:5000", "", "", ""}, AddMode::kLearner, 5000,
               [&](Status s, MemberRefusal why) { added.set_value(Outcome{std::move(s), why}); });
  a.update_member_address(node_id_for("b"), "b:6000", 5000,
                          [&](Status s, MemberRefusal why) { moved.set_value(Outcome{std::move(s), why}); });
  const Outcome first = added.get_future().get();
  const Outcome second = moved.get_future().get();
  EXPECT_TRUE(first.status.is_ok()) << first.status.to_string();
  EXPECT_TRUE(second.status.is_ok()) << second.status.to_string();
  for (const MemberStatus& m : a.status().members) {
    if (m.info.name == "b") {
      EXPECT_EQ(m.info.raft_address, "b:6000");
    }
  }
}

// The intent to promote is replicated (MemberInfo::promote_when_caught_up):
// a member added as a voter by one leader is promoted by the next once it
// catches up. Before, only the leader holding the /join's waiter promoted.
TEST_F(NodeTest, NextLeaderPromotesAMemberAddedAsAVoter) {
  ASSERT_NO_FATAL_FAILURE(start_three_voters());
  Node* first = leader();
  ASSERT_NE(first, nullptr);
  ASSERT_TRUE(eventually([&] { return all_active(*first); }));
  ASSERT_TRUE(add(*first, "d", AddMode::kVoterAsync).status.is_ok());
  std::string first_name;
  for (auto& [name, n] : nodes_) {
    if (n.get() == first) first_name = name;
  }
  kill(first_name);  // hands leadership to another voter
  ASSERT_TRUE(eventually([&] { return leader() != nullptr; }));
  start("d", false);
  ASSERT_TRUE(eventually([&] {
    Node* l = leader();
    return l != nullptr && role_of(*l, "d") == "voter";
  }));
}

// A follower answers a change the leader made only once its own status shows it.
TEST_F(NodeTest, FollowerWaitsForItsConfigurationToShowAChange) {
  start("a", true);
  Node& b = start("b", false);
  ASSERT_TRUE(join("b").is_ok());
  ASSERT_TRUE(eventually([&] { return all_active(*nodes_["a"]); }));
  ASSERT_TRUE(add(*leader(), "c", AddMode::kLearner).status.is_ok());
  std::promise<Status> seen;
  const raft::NodeId c = node_id_for("c");
  b.wait_for_configuration([c](const raft::Membership& applied) { return applied.is_learner(c); }, 5000,
                           [&](Status s) { seen.set_value(std::move(s)); });
  ASSERT_TRUE(seen.get_future().get().is_ok());
  EXPECT_EQ(role_of(b, "c"), "learner");
  std::promise<Status> never;
  b.wait_for_configuration([](const raft::Membership&) { return false; }, 50,
                           [&](Status s) { never.set_value(std::move(s)); });
  EXPECT_EQ(never.get_future().get().code(), StatusCode::kTimeout);
}

// -auto-compaction-mode=periodic: the leader proposes compactions, and
// every replica applies them at the same index.
TEST_F(NodeTest, AutoCompactionBoundsHistoryOnEveryNode) {
  auto_compaction_ = parse_auto_compaction("periodic", "300ms").value();
  start("a", true);
  start("b", false);
  ASSERT_TRUE(join("b").is_ok());
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(write(*leader(), "k", std::to_string(i)).is_ok());
  const int64_t written = leader()->state_machine().revision();
  ASSERT_TRUE(eventually([&] { return leader()->status().compact_revision >= written; }, 10s));
  for (auto& [name, n] : nodes_) {
    ASSERT_TRUE(barrier(*n).is_ok());
    EXPECT_GE(n->status().compact_revision, written) << name;
    ASSERT_TRUE(eventually([&] { return n->state_machine().version_count() == 1; })) << name;  // k's newest only
  }
}

// Every revision a node can answer, as the etcd Range it would return (or its error).
std::vector<std::string> answers_at_every_revision(const Node& n) {
  std::vector<std::string> out;
  const fsm::KvStateMachine& sm = n.state_machine();
  for (int64_t rev = 0; rev <= sm.revision() + 1; ++rev) {
    mvcc::RangeRequest r;
    r.key = "k";
    r.range_end = "l";
    r.revision = rev;
    auto res = sm.range(r);
    std::string line = std::to_string(rev) + ":";
    if (!res.is_ok()) {
      line += "error " + res.status().message();
    } else {
      for (const mvcc::KeyValue& kv : res.value().kvs) {
        line += " " + kv.key + "=" + kv.value + "@" + std::to_string(kv.create_revision) + "/" +
                std::to_string(kv.mod_revision) + "/" + std::to_string(kv.version);
      }
    }
    out.push_back(std::move(line));
  }
  return out;
}

// Issue 8: revisions are replicated state. A node brought up by
// InstallSnapshot, and the same node restarted from it, answer every
// revision query (history, deletes, a compaction) exactly as the leader.
TEST_F(NodeTest, SnapshotInstalledAndRestartedNodesAnswerEveryRevisionAsTheLeader) {
  snapshot_threshold_ = 20;
  start("a", true);
  ASSERT_TRUE(eventually([&] { return leader() != nullptr; }));
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 15; ++i) ASSERT_TRUE(write(*leader(), "k" + std::to_string(i), "v" + std::to_string(round)).is_ok());
  }
  fsm::Command del;
  del.request = mvcc::DeleteRangeRequest{"k1", "k2", false};  // k1, k10..k14
  ASSERT_TRUE(propose(*leader(), del).is_ok());
  fsm::Command compact;
  compact.request = mvcc::CompactionRequest{10, true};
  auto compacted = propose(*leader(), compact);
  ASSERT_TRUE(compacted.is_ok() && compacted.value().status.is_ok());
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(write(*leader(), "k" + std::to_string(i % 5), "late").is_ok());
  ASSERT_TRUE(eventually([&] { return leader()->status().snapshot_index >= 60; }));
  start("c", false);
  ASSERT_TRUE(join("c").is_ok());
  Node& c = *nodes_["c"];
  ASSERT_TRUE(barrier(c).is_ok());
  EXPECT_GT(c.status().snapshot_index, 0u);  // by InstallSnapshot, not the log
  const std::vector<std::string> want = answers_at_every_revision(*nodes_["a"]);
  EXPECT_EQ(c.state_machine().revision(), nodes_["a"]->state_machine().revision());
  EXPECT_EQ(c.status().compact_revision, 10);
  EXPECT_EQ(answers_at_every_revision(c), want);
  kill("c");
  Node& c2 = start("c", false);
  ASSERT_TRUE(eventually([&] { return barrier(c2).is_ok(); }));
  EXPECT_EQ(answers_at_every_revision(c2), want);
  EXPECT_EQ(c2.status().revision, nodes_["a"]->status().revision);
}

// Issue 8, exactly-once retries (thesis §6.3): a retry after a leader
// change, on another node, returns the first result and adds no revision.
TEST_F(NodeTest, RetryWithTheSameIdempotencyKeyAfterALeaderChangeIsNotAppliedAgain) {
  ASSERT_NO_FATAL_FAILURE(start_three_voters());
  Node* old = leader();
  ASSERT_NE(old, nullptr);
  auto first = write(*old, "k", "v1", 5000, "client-7:req-1");
  ASSERT_TRUE(first.is_ok() && first.value().status.is_ok());
  EXPECT_FALSE(first.value().duplicate);
  const int64_t first_rev = std::get<mvcc::PutResponse>(first.value().response).header.revision;
  hub_->isolate(old->status().id, true);
  Node* fresh = nullptr;
  ASSERT_TRUE(eventually([&] {
    for (auto& [name, n] : nodes_) {
      if (n.get() != old && n->status().state == "leader") fresh = n.get();
    }
    return fresh != nullptr;
  }));
  ASSERT_TRUE(barrier(*fresh).is_ok());
  const int64_t before = fresh->state_machine().revision();
  auto retry = write(*fresh, "k", "v1", 5000, "client-7:req-1");
  ASSERT_TRUE(retry.is_ok()) << retry.status().to_string();
  EXPECT_TRUE(retry.value().duplicate);
  EXPECT_TRUE(retry.value().status.is_ok());
  EXPECT_EQ(std::get<mvcc::PutResponse>(retry.value().response).header.revision, first_rev);
  EXPECT_EQ(fresh->state_machine().revision(), before);
  hub_->isolate(old->status().id, false);
  ASSERT_TRUE(eventually([&] { return barrier(*old).is_ok(); }));
  EXPECT_EQ(old->state_machine().revision(), before);
}

// What the decoder would refuse never enters the log: every node must be
// able to decode every committed entry (or it stops, below).
TEST_F(NodeTest, ProposeRefusesCommandsTheLogCannotCarry) {
  start("a", true);
  ASSERT_TRUE(eventually([&] { return leader() != nullptr; }));
  mvcc::TxnRequest deep;
  for (size_t i = 1; i < fsm::kMaxTxnNestingDepth + 1; ++i) {
    mvcc::TxnRequest outer;
    outer.success.push_back(mvcc::op_txn(std::move(deep)));
    deep = std::move(outer);
  }
  fsm::Command c;
  c.request = deep;
  ASSERT_EQ(fsm::txn_depth(c.request), fsm::kMaxTxnNestingDepth + 1);
  const uint64_t last = leader()->status().last_index;
  auto r = propose(*leader(), c);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalid);
  EXPECT_EQ(r.status().message(), mvcc::kErrTooManyOps);
  auto long_key = write(*leader(), "k", "v", 5000, std::string(fsm::kMaxIdempotencyKeyBytes + 1, 'i'));
  EXPECT_EQ(long_key.status().code(), StatusCode::kInvalid);
  EXPECT_EQ(leader()->status().last_index, last);  // nothing was proposed
  // At the limit it is fine (the store answers: the nested txns are empty).
  mvcc::TxnRequest at_limit = *std::get<std::shared_ptr<const mvcc::TxnRequest>>(deep.success[0].request);
  c.request = at_limit;
  ASSERT_EQ(fsm::txn_depth(c.request), fsm::kMaxTxnNestingDepth);
  auto ok = propose(*leader(), c);
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
}

// Appends committed entries with these payloads after the last entry of
// name's log (which must be stopped), in its last term.
void append_committed(const std::filesystem::path& dir, const std::vector<std::string>& payloads,
                      raft::Index* last_before = nullptr, raft::Term* term_out = nullptr) {
  auto store = storage::open_log_storage(dir.string(), storage::WalOptions{});
  ASSERT_TRUE(store.is_ok()) << store.status().to_string();
  auto hs = store.value()->load_hard_state();
  auto entries = store.value()->load_entries();
  ASSERT_TRUE(hs.is_ok() && entries.is_ok() && !entries.value().empty());
  raft::Index last = entries.value().back().index;
  const raft::Term term = entries.value().back().term;
  if (last_before != nullptr) *last_before = last;
  if (term_out != nullptr) *term_out = term;
  std::vector<raft::Entry> add;
  for (const std::string& p : payloads) add.push_back(raft::Entry{term, ++last, raft::EntryType::kNormal, p});
  raft::HardState committed = hs.value();
  committed.commit = last;
  Status persisted = store.value()->persist(add, committed, false);
  ASSERT_TRUE(persisted.is_ok()) << persisted.to_string();
}

// DESIGN.md: "an entry a node cannot decode stops it (never skip: skipping
// diverges replicas)". Before, the node logged and skipped it.
TEST_F(NodeTest, UndecodableCommittedEntryStopsTheNodeWithItsExitCode) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  start("a", true);
  ASSERT_TRUE(eventually([&] { return leader() != nullptr; }));
  ASSERT_TRUE(write(*nodes_["a"], "k", "v").is_ok());
  kill("a");
  append_committed(root_ / "a", {std::string("\x07future command", 15)});
  EXPECT_EXIT(
      {
        spdlog::set_default_logger(spdlog::stderr_color_mt("death"));
        start("a", true);
        // Applying the committed entry ends the process; give up after a deadline.
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while (std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(kExitUndecodableEntry), "cannot decode the committed entry at index");
}

// A data dir from before the MVCC store: a CKVSNAP1 snapshot and format-1
// log entries after it. Both are read; the next snapshot is CKVSNAP2.
TEST_F(NodeTest, DataDirFromBeforeTheMvccStoreIsConverted) {
  start("a", true);
  ASSERT_TRUE(eventually([&] { return leader() != nullptr; }));
  ASSERT_TRUE(write(*nodes_["a"], "k", "v").is_ok());
  kill("a");
  raft::Index last = 0;
  raft::Term term = 0;
  append_committed(root_ / "a", {fsm::encode_legacy_set("after", "2"), fsm::encode_legacy_delete("legacy-gone")},
                   &last, &term);
  // The snapshot at the log's old last entry, as the previous version wrote them.
  std::optional<raft::Membership> real;
  {
    auto store = storage::open_log_storage((root_ / "a").string(), storage::WalOptions{});
    ASSERT_TRUE(store.is_ok());
    auto entries = store.value()->load_entries();
    ASSERT_TRUE(entries.is_ok());
    for (const raft::Entry& e : entries.value()) {
      if (e.type == raft::EntryType::kConfig && e.index <= last) real = raft::decode_membership(e.data);
    }
  }
  ASSERT_TRUE(real.has_value());
  ASSERT_TRUE(storage::write_legacy_snapshot_file((root_ / "a").string(), last, term, *real,
                                                  {{"legacy", "1"}, {"legacy-gone", "x"}})
                  .is_ok());
  snapshot_threshold_ = 3;
  Node& a = start("a", true);
  ASSERT_TRUE(eventually([&] { return barrier(a).is_ok(); }));
  EXPECT_EQ(a.state_machine().get("legacy"), "1");
  EXPECT_EQ(a.state_machine().get("after"), "2");
  EXPECT_EQ(a.state_machine().get("legacy-gone"), std::nullopt);
  EXPECT_EQ(a.state_machine().get("k"), std::nullopt);  // it was in the log before the snapshot, not in its map
  EXPECT_EQ(a.status().revision, 5);  // two legacy keys, then a put and a delete
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(write(a, "n" + std::to_string(i), "v").is_ok());
  ASSERT_TRUE(eventually([&] { return a.status().snapshot_index > last; }));
  kill("a");
  auto latest = storage::find_latest_snapshot((root_ / "a").string());
  ASSERT_TRUE(latest.is_ok() && latest.value().has_value());
  auto loaded = storage::read_snapshot_file(*latest.value());
  ASSERT_TRUE(loaded.is_ok());
  EXPECT_FALSE(loaded.value().legacy_map.has_value());  // written as CKVSNAP2
  Node& again = start("a", true);
  ASSERT_TRUE(eventually([&] { return barrier(again).is_ok(); }));
  EXPECT_EQ(again.state_machine().get("legacy"), "1");
  EXPECT_EQ(again.state_machine().get("n4"), "v");
}

// --- Backups, restore, leadership transfer, quorum-loss recovery (issue 12) ---

TEST_F(NodeTest, WriteBackupHoldsTheAppliedStateAndTheNodeGoesOn) {
  Node& a = start("a", true);
  ASSERT_TRUE(eventually([&] { return leader() != nullptr; }));
  for (int i = 0; i < 300; ++i) ASSERT_TRUE(write(a, "k" + std::to_string(i), "v").is_ok());
  ASSERT_TRUE(write(a, "k0", "v2").is_ok());
  const int64_t revision = a.state_machine().revision();  // status() is published a loop pass later
  std::promise<Result<BackupFile>> p;
  a.write_backup([&](Result<BackupFile> r) { p.set_value(std::move(r)); });
  auto file = p.get_future().get();
  ASSERT_TRUE(file.is_ok()) << file.status().to_string();
  EXPECT_EQ(file.value().index, a.state_machine().applied_index());
  // Writes after it do not change it; the node takes more writes meanwhile.
  ASSERT_TRUE(write(a, "after", "x").is_ok());
  auto backup = storage::read_backup_file(file.value().path);
  ASSERT_TRUE(backup.is_ok()) << backup.status().to_string();
  EXPECT_FALSE(backup.value().had_sha256);  // the node's file; the stream adds the SHA-256
  auto state = fsm::KvStateMachine::decode_payload(backup.value().snapshot.payload);
  ASSERT_TRUE(state.is_ok());
  EXPECT_EQ(state.value().store.revision(), revision);
  EXPECT_EQ(state.value().store.key_count(), 300u);
  std::filesystem::remove(file.value().path);
  // A restart deletes a backup file left behind (a Snapshot call cut short).
  std::promise<Result<BackupFile>> left;
  a.write_backup([&](Result<BackupFile> r) { left.set_value(std::move(r)); });
  const std::string leftover = left.get_future().get().value().path;
  ASSERT_TRUE(std::filesystem::exists(leftover));
  kill("a");
  start("a", true);
  EXPECT_FALSE(std::filesystem::exists(leftover));
}

TEST_F(NodeTest, RestoredDataDirIsAOneMemberClusterWithTheBackupsState) {
  Node& a = start("a", true);
  ASSERT_TRUE(eventually([&] { return leader() != nullptr; }));
  ASSERT_TRUE(write(a, "k", "v1").is_ok());
  const int64_t first = a.state_machine().revision();
  ASSERT_TRUE(write(a, "k", "v2").is_ok());
  std::promise<Result<BackupFile>> p;
  a.write_backup([&](Result<BackupFile> r) { p.set_value(std::move(r)); });
  auto file = p.get_future().get();
  ASSERT_TRUE(file.is_ok());
  const uint64_t cluster = a.status().cluster_id;
  const int64_t revision = a.state_machine().revision();

  RestoreOptions ro;
  ro.snapshot_path = file.value().path;
  ro.data_dir = (root_ / "r").string();
  ro.name = "r";
  ro.raft_address = "r:5000";
  auto restored = restore_data_dir(ro);
  ASSERT_TRUE(restored.is_ok()) << restored.status().to_string();
  EXPECT_NE(restored.value().cluster_id, cluster);
  EXPECT_EQ(restored.value().revision, revision);
  kill("a");
  Node& r = start("r", false);
  ASSERT_TRUE(eventually([&] { return r.status().state == "leader"; }));
  const NodeStatus st = r.status();
  EXPECT_EQ(st.cluster_id, restored.value().cluster_id);
  ASSERT_EQ(st.members.size(), 1u);
  EXPECT_EQ(st.members[0].info.name, "r");
  EXPECT_EQ(r.state_machine().revision(), revision);
  mvcc::RangeRequest old;
  old.key = "k";
  old.revision = first;
  auto got = r.state_machine().range(old);
  ASSERT_TRUE(got.is_ok());
  ASSERT_EQ(got.value().kvs.size(), 1u);
  EXPECT_EQ(got.value().kvs[0].value, "v1");
  auto w = write(r, "k", "v3");
  ASSERT_TRUE(w.is_ok());
  EXPECT_EQ(r.state_machine().revision(), revision + 1);
}

TEST_F(NodeTest, TransferLeadershipMovesToTheTargetAndRefusesBadTargets) {
  start_three_voters();
  Node* l = nullptr;
  ASSERT_TRUE(eventually([&] { return (l = leader()) != nullptr && all_active(*l); }));
  auto transfer = [](Node& n, raft::NodeId to) {
    std::promise<Status> p;
    n.transfer_leadership(to, 5000, [&](Status s) { p.set_value(std::move(s)); });
    return p.get_future().get();
  };
  const std::string from = l->status().name;
  const std::string to = from == "b" ? "c" : "b";
  EXPECT_EQ(transfer(*l, node_id_for("nobody")).code(), StatusCode::kInvalid);
  EXPECT_TRUE(transfer(*l, node_id_for(from)).is_ok());  // already leads
  Node& follower = *nodes_[to];
  EXPECT_EQ(transfer(follower, node_id_for(from)).code(), StatusCode::kNotLeader);
  ASSERT_TRUE(transfer(*l, node_id_for(to)).is_ok());
  EXPECT_EQ(l->status().leader_id, node_id_for(to));
  ASSERT_TRUE(eventually([&] { return write(follower, "after", "1").is_ok(); }));
}

TEST_F(NodeTest, ForceNewClusterKeepsEveryEntryAndLeadsAlone) {
  start_three_voters();
  Node* l = nullptr;
  ASSERT_TRUE(eventually([&] { return (l = leader()) != nullptr; }));
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(write(*l, "k" + std::to_string(i), "v").is_ok());
  const std::string leader_name = l->status().name;
  const uint64_t cluster = l->status().cluster_id;
  const uint64_t commit = l->status().commit_index;
  const std::string survivor = leader_name == "a" ? "b" : "a";
  ASSERT_TRUE(eventually([&] { return nodes_[survivor]->status().last_index >= commit; }));
  for (const char* n : {"a", "b", "c"}) kill(n);
  NodeOptions o = options(survivor, false);
  o.force_new_cluster = true;
  {
    std::lock_guard lock(mu_);
    auto n = Node::open(o, std::make_unique<transport::MemoryTransport>(hub_, node_id_for(survivor)));
    ASSERT_TRUE(n.is_ok()) << n.status().to_string();
    nodes_[survivor] = std::move(n).value();
    nodes_[survivor]->start();
  }
  Node& s = *nodes_[survivor];
  ASSERT_TRUE(eventually([&] { return s.status().state == "leader"; }));
  EXPECT_EQ(s.status().members.size(), 1u);
  EXPECT_EQ(s.status().cluster_id, cluster);  // the same cluster, smaller
  ASSERT_TRUE(barrier(s).is_ok());
  for (int i = 0; i < 20; ++i) EXPECT_EQ(s.state_machine().get("k" + std::to_string(i)), "v");
  ASSERT_TRUE(write(s, "after", "1").is_ok());
  // The reset is in the log: a restart without the flag agrees.
  kill(survivor);
  Node& again = start(survivor, false);
  ASSERT_TRUE(eventually([&] { return again.status().state == "leader"; }));
  EXPECT_EQ(again.status().members.size(), 1u);
  ASSERT_TRUE(barrier(again).is_ok());
  EXPECT_EQ(again.state_machine().get("after"), "1");
}

TEST_F(NodeTest, ForceNewClusterOnAnEmptyDataDirIsRefused) {
  NodeOptions o = options("x", false);
  o.force_new_cluster = true;
  auto n = Node::open(o, std::make_unique<transport::MemoryTransport>(hub_, node_id_for("x")));
  ASSERT_FALSE(n.is_ok());
  EXPECT_EQ(n.status().code(), StatusCode::kInvalid);
}

}  // namespace
}  // namespace ckv::node
