// Unit tests for src/etcd/kv_service.h on real in-process Nodes: validation, reads, writes, idempotency, routing without a leader's gRPC address, stop.
#include "etcd/kv_service.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "etcd/grpc_server.h"
#include "etcd/kv_convert.h"
#include "etcd/kv_grpc_service.h"
#include "fsm/kv_state_machine.h"
#include "loopback_port.h"
#include "memory_transport.h"
#include "mvcc/errors.h"

namespace ckv::etcd {
namespace {

using namespace std::chrono_literals;

mvcc::PutRequest put_req(std::string k, std::string v, int64_t lease = 0, bool prev_kv = false) {
  mvcc::PutRequest r;
  r.key = std::move(k);
  r.value = std::move(v);
  r.lease = lease;
  r.prev_kv = prev_kv;
  return r;
}

mvcc::CompactionRequest compaction(int64_t rev) {
  mvcc::CompactionRequest r;
  r.revision = rev;
  return r;
}

class KvServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() /
            ("ckv_kvsvc_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(root_);
  }
  void TearDown() override {
    for (auto& g : grpc_) g->stop();
    grpc_.clear();
    services_.clear();
    for (auto& n : nodes_) n->stop();
    nodes_.clear();
    std::filesystem::remove_all(root_);
  }

  node::Node& start(const std::string& name, bool bootstrap, const std::string& grpc_address = "") {
    node::NodeOptions o;
    o.grpc_address = grpc_address;
    o.name = name;
    o.raft_address = name + ":5000";
    o.api_address = name + ":8000";
    o.data_dir = (root_ / name).string();
    o.bootstrap = bootstrap;
    o.tick_ms = 10;
    o.election_ticks = 10;
    o.heartbeat_ticks = 1;
    o.leader_wait_ms = request_timeout_ms_;  // the call's timeout bounds the wait for a leader
    auto t = std::make_unique<transport::MemoryTransport>(hub_, node::node_id_for(name));
    auto n = node::Node::open(o, std::move(t));
    EXPECT_TRUE(n.is_ok()) << n.status().to_string();
    nodes_.push_back(std::move(n).value());
    nodes_.back()->start();
    KvServiceOptions kv_options;
    kv_options.request_timeout_ms = request_timeout_ms_;
    services_.push_back(std::make_unique<KvService>(*nodes_.back(), kv_options));
    return *nodes_.back();
  }

  template <typename F>
  bool eventually(F f, std::chrono::milliseconds limit = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (f()) return true;
      std::this_thread::sleep_for(5ms);
    }
    return f();
  }

  // Calls (kv.*method)(request, call, done) and waits for done.
  template <typename Resp, typename Req, typename Method>
  Result<KvAnswer<Resp>> call(KvService& kv, Method method, Req r, KvCall c = {}) {
    std::promise<Result<KvAnswer<Resp>>> p;
    (kv.*method)(std::move(r), std::move(c),
                 [&p](Result<KvAnswer<Resp>> a) { p.set_value(std::move(a)); });
    auto f = p.get_future();
    EXPECT_EQ(f.wait_for(10s), std::future_status::ready);
    return f.get();
  }

  Result<KvAnswer<mvcc::PutResponse>> put(KvService& kv, std::string k, std::string v,
                                          KvCall c = {}) {
    mvcc::PutRequest r;
    r.key = std::move(k);
    r.value = std::move(v);
    return call<mvcc::PutResponse>(kv, &KvService::put, std::move(r), std::move(c));
  }

  Result<KvAnswer<mvcc::RangeResponse>> get(KvService& kv, std::string k, bool serializable,
                                            int64_t rev = 0) {
    mvcc::RangeRequest r;
    r.key = std::move(k);
    r.serializable = serializable;
    r.revision = rev;
    return call<mvcc::RangeResponse>(kv, &KvService::range, std::move(r));
  }

  node::Node& single() {
    node::Node& n = start("n1", true);
    EXPECT_TRUE(eventually([&] { return n.status().state == "leader"; }));
    return n;
  }

  int request_timeout_ms_ = 2000;
  // n1 leading and n2 added as a member that follows it (services_[1] is n2's).
  void leader_and_follower(node::Node** leader_out, node::Node** follower_out) {
    node::Node& leader = single();
    node::Node& follower = start("n2", false);
    std::promise<Status> added;
    leader.add_member(node::MemberInfo{"n2", "n2:5000", "n2:8000", follower.incarnation(), ""},
                      10000, [&](Status s) { added.set_value(s); });
    ASSERT_TRUE(added.get_future().get().is_ok());
    ASSERT_TRUE(eventually([&] { return follower.status().leader_id == leader.status().id; }));
    *leader_out = &leader;
    *follower_out = &follower;
  }

  std::filesystem::path root_;
  std::shared_ptr<transport::MemoryHub> hub_ = std::make_shared<transport::MemoryHub>();
  std::vector<std::unique_ptr<node::Node>> nodes_;
  std::vector<std::unique_ptr<KvService>> services_;
  std::vector<std::unique_ptr<GrpcServer>> grpc_;
};

using testing_support::unused_loopback_port;

TEST_F(KvServiceTest, InvalidRequestsAreAnsweredInlineWithEtcdsText) {
  single();
  KvService& kv = *services_[0];
  bool answered = false;
  Status got;
  kv.put(mvcc::PutRequest{}, {}, [&](Result<KvAnswer<mvcc::PutResponse>> r) {
    answered = true;
    got = r.status();
  });
  EXPECT_TRUE(answered) << "validation must answer before anything is proposed";
  EXPECT_EQ(got.message(), mvcc::kErrEmptyKey);

  mvcc::TxnRequest big;
  for (int i = 0; i < 129; ++i) big.success.push_back(mvcc::op_put(put_req("k" + std::to_string(i), "v")));
  EXPECT_EQ(call<mvcc::TxnResponse>(kv, &KvService::txn, big).status().message(),
            mvcc::kErrTooManyOps);
  EXPECT_EQ(get(kv, "", false).status().message(), mvcc::kErrEmptyKey);

  // Idempotency keys as the seed API's header: bounded, printable.
  KvCall long_key;
  long_key.idempotency_key.assign(fsm::kMaxIdempotencyKeyBytes + 1, 'x');
  EXPECT_EQ(put(kv, "k", "v", long_key).status().code(), StatusCode::kInvalid);
  KvCall binary_key;
  binary_key.idempotency_key = std::string("a\nb");
  EXPECT_EQ(put(kv, "k", "v", binary_key).status().code(), StatusCode::kInvalid);
  EXPECT_EQ(nodes_[0]->state_machine().revision(), 1) << "nothing may have been applied";
}

TEST_F(KvServiceTest, WritesAndReadsCarryTheStoreRevisionAndTheNodesHeader) {
  node::Node& n = single();
  KvService& kv = *services_[0];
  auto w = put(kv, "a", "1");
  ASSERT_TRUE(w.is_ok()) << w.status().to_string();
  EXPECT_EQ(w->body.header.revision, 2);
  EXPECT_EQ(w->header.revision, 2u);
  EXPECT_EQ(w->header.member_id, n.status().id);
  EXPECT_EQ(w->header.cluster_id, n.status().cluster_id);
  EXPECT_NE(w->header.cluster_id, 0u);
  EXPECT_EQ(w->header.raft_term, n.status().term);

  for (bool serializable : {false, true}) {
    auto r = get(kv, "a", serializable);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    ASSERT_EQ(r->body.kvs.size(), 1u);
    EXPECT_EQ(r->body.kvs[0].value, "1");
    EXPECT_EQ(r->header.revision, 2u);
  }
  EXPECT_TRUE(put(kv, "a", "2").is_ok());

  const mvcc::PutRequest with_lease = put_req("b", "v", 42);
  auto leased = call<mvcc::PutResponse>(kv, &KvService::put, with_lease);
  EXPECT_EQ(leased.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(leased.status().message(), mvcc::kErrLeaseNotFound);

  // A txn: compare on the value, then read and write in one revision.
  mvcc::TxnRequest t;
  mvcc::Compare c;
  c.key = "a";
  c.target = mvcc::Compare::CompareTarget::kValue;
  c.value = "2";
  t.compare.push_back(c);
  mvcc::RangeRequest ra;
  ra.key = "a";
  t.success.push_back(mvcc::op_range(ra));
  t.success.push_back(mvcc::op_put(put_req("c", "3")));
  auto tr = call<mvcc::TxnResponse>(kv, &KvService::txn, t);
  ASSERT_TRUE(tr.is_ok()) << tr.status().to_string();
  EXPECT_TRUE(tr->body.succeeded);
  EXPECT_EQ(tr->header.revision, 4u);

  // Compaction, then reads below it fail as etcd's do; the compacted revision itself reads.
  auto cr = call<mvcc::CompactionResponse>(kv, &KvService::compact, compaction(3));
  ASSERT_TRUE(cr.is_ok()) << cr.status().to_string();
  EXPECT_EQ(get(kv, "a", false, 2).status().message(), mvcc::kErrCompacted);
  EXPECT_TRUE(get(kv, "a", false, 3).is_ok());
  EXPECT_EQ(get(kv, "a", true, 99).status().message(), mvcc::kErrFutureRev);
  EXPECT_EQ(to_grpc_status(get(kv, "a", false, 2).status()).error_code(),
            grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_EQ(call<mvcc::CompactionResponse>(kv, &KvService::compact, compaction(3))
                .status()
                .message(),
            mvcc::kErrCompacted);
}

// etcd serves a txn that writes nothing like a Range (isTxnReadonly): no log
// entry, linearizable (a read barrier) unless every op is a serializable
// range, and the same answer a proposed txn gave.
TEST_F(KvServiceTest, ReadOnlyTxnsAreAnsweredWithoutALogEntry) {
  node::Node& n = single();
  KvService& kv = *services_[0];
  ASSERT_TRUE(put(kv, "a", "1").is_ok());
  ASSERT_TRUE(put(kv, "b", "2").is_ok());
  // Once the leader has recorded its own addresses (a configuration entry of
  // its own), nothing else appends to the log unless a client writes.
  // (Node::status() is published once per loop, so it may lag an answered
  // write: wait for the revision the writes made.)
  auto settled_at = [&](int64_t revision) {
    return eventually([&] {
      const node::NodeStatus st = n.status();
      return st.revision == revision && st.applied_index == st.last_index &&
             st.members.size() == 1 && st.members[0].info.api_address == "n1:8000";
    });
  };
  ASSERT_TRUE(settled_at(3));
  const uint64_t last = n.status().last_index;

  mvcc::Compare a_is_1;
  a_is_1.key = "a";
  a_is_1.target = mvcc::Compare::CompareTarget::kValue;
  a_is_1.value = "1";
  mvcc::Compare b_is_x = a_is_1;
  b_is_x.key = "b";
  b_is_x.value = "x";
  mvcc::RangeRequest b;
  b.key = "b";
  mvcc::RangeRequest all;
  all.key = "a";
  all.range_end = "c";
  mvcc::TxnRequest inner;
  inner.compare = {b_is_x};
  inner.failure = {mvcc::op_range(b)};
  mvcc::TxnRequest t;
  t.compare = {a_is_1};
  t.success = {mvcc::op_range(all), mvcc::op_txn(inner)};
  auto r = call<mvcc::TxnResponse>(kv, &KvService::txn, t);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_TRUE(r->body.succeeded);
  EXPECT_EQ(r->header.revision, 3u);
  EXPECT_EQ(r->header.member_id, n.status().id);
  EXPECT_EQ(std::get<mvcc::RangeResponse>(r->body.responses.at(0).response).kvs.size(), 2u);
  const auto& nested = std::get<std::shared_ptr<mvcc::TxnResponse>>(r->body.responses.at(1).response);
  EXPECT_FALSE(nested->succeeded);
  EXPECT_EQ(std::get<mvcc::RangeResponse>(nested->responses.at(0).response).kvs.at(0).value, "2");

  // Serializable: every op a serializable range.
  mvcc::TxnRequest local;
  all.serializable = true;
  local.success = {mvcc::op_range(all)};
  auto l = call<mvcc::TxnResponse>(kv, &KvService::txn, local);
  ASSERT_TRUE(l.is_ok()) << l.status().to_string();
  EXPECT_EQ(std::get<mvcc::RangeResponse>(l->body.responses.at(0).response).count, 2);
  // The store's errors, as a proposed txn answered them.
  mvcc::TxnRequest future = local;
  std::get<mvcc::RangeRequest>(future.success[0].request).revision = 99;
  EXPECT_EQ(call<mvcc::TxnResponse>(kv, &KvService::txn, future).status().message(),
            mvcc::kErrFutureRev);

  // A txn that writes (here only in a nested failure branch) is still
  // proposed, even when the branch that runs writes nothing.
  mvcc::TxnRequest writes = t;
  mvcc::TxnRequest nested_put;
  nested_put.failure = {mvcc::op_put(put_req("c", "3"))};
  writes.success.push_back(mvcc::op_txn(nested_put));
  auto w = call<mvcc::TxnResponse>(kv, &KvService::txn, writes);
  ASSERT_TRUE(w.is_ok()) << w.status().to_string();
  EXPECT_EQ(w->header.revision, 3u);  // the nested txn's success branch ran: no write
  ASSERT_TRUE(put(kv, "z", "marker").is_ok());
  ASSERT_TRUE(settled_at(4));
  // Entries since `last`: the writing txn and the marker put, nothing for the reads.
  EXPECT_EQ(n.status().last_index, last + 2) << "a read-only txn went through the log";
}

// Maintenance.Status's dbSize and dbSizeInUse come from NodeStatus: the data
// dir's bytes on disk and the state machine's estimate in memory.
TEST_F(KvServiceTest, StatusReportsTheDataDirAndStateMachineSizes) {
  node::Node& n = single();
  KvService& kv = *services_[0];
  ASSERT_TRUE(eventually([&] { return n.status().data_dir_bytes > 0; }));
  const node::NodeStatus before = n.status();
  ASSERT_TRUE(put(kv, "big", std::string(100000, 'v')).is_ok());
  ASSERT_TRUE(eventually([&] {
    return n.status().state_machine_bytes >= before.state_machine_bytes + 100000;
  }));
  EXPECT_EQ(n.status().state_machine_bytes, n.state_machine().estimated_bytes());
  // The WAL preallocates its segments, so the value may fit in what was
  // there already: the size never shrinks for it, and counts whole files.
  uint64_t files = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root_ / "n1")) {
    if (e.is_regular_file() && e.path().filename() != "space-reserve") files += e.file_size();
  }
  ASSERT_TRUE(eventually([&] { return n.status().data_dir_bytes == files; }, 3s))
      << n.status().data_dir_bytes << " vs " << files;
  const etcd::MaintenanceStatus ms = etcd::status_for(n.status());
  EXPECT_EQ(ms.db_size, n.status().data_dir_bytes);
  EXPECT_EQ(ms.db_size_in_use, n.status().state_machine_bytes);
}

TEST_F(KvServiceTest, ARetryWithTheSameIdempotencyKeyReturnsTheFirstResult) {
  single();
  KvService& kv = *services_[0];
  KvCall c;
  c.idempotency_key = "req-1";
  const mvcc::PutRequest r = put_req("k", "v", 0, /*prev_kv=*/true);
  auto first = call<mvcc::PutResponse>(kv, &KvService::put, r, c);
  auto again = call<mvcc::PutResponse>(kv, &KvService::put, r, c);
  ASSERT_TRUE(first.is_ok() && again.is_ok());
  EXPECT_EQ(again->body, first->body);  // no prev_kv: the retry was not applied
  EXPECT_EQ(nodes_[0]->state_machine().revision(), 2);
  // The same key naming another kind of request cannot be answered with its result.
  auto other = call<mvcc::DeleteRangeResponse>(kv, &KvService::delete_range,
                                               mvcc::DeleteRangeRequest{"k", "", false}, c);
  EXPECT_EQ(other.status().code(), StatusCode::kInvalid);
  EXPECT_EQ(nodes_[0]->state_machine().revision(), 2);
}

// Followers forward writes as Raft proposals (node/forward_waiters.h), so a
// leader without -grpc-address (nothing to forward a gRPC call to) no longer
// makes a follower's writes fail with "no leader", as they did before.
TEST_F(KvServiceTest, AFollowerWritesWithoutTheLeadersGrpcAddress) {
  node::Node* leader_p = nullptr;
  node::Node* follower_p = nullptr;
  ASSERT_NO_FATAL_FAILURE(leader_and_follower(&leader_p, &follower_p));
  node::Node& follower = *follower_p;
  KvService& kv = *services_[1];
  ASSERT_TRUE(put(*services_[0], "a", "1").is_ok());

  // No -grpc-address on the leader: the write goes over the peer transport.
  auto w = put(kv, "b", "2");
  ASSERT_TRUE(w.is_ok()) << w.status().to_string();
  EXPECT_EQ(w->header.member_id, follower.status().id);
  EXPECT_EQ(follower.state_machine().get("b"), std::optional<std::string>("2"));
  // A call an older member forwarded over gRPC is never forwarded again.
  KvCall forwarded;
  forwarded.forwarded = true;
  auto f = put(kv, "b", "2", forwarded);
  EXPECT_EQ(to_grpc_status(f.status()).error_message(), "etcdserver: leader changed");
  EXPECT_EQ(to_grpc_status(f.status()).error_code(), grpc::StatusCode::UNAVAILABLE);
  // Linearizable reads need no forwarding: the follower's read barrier sees the leader's write.
  auto r = get(kv, "a", false);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->body.kvs.size(), 1u);
  EXPECT_EQ(r->header.member_id, follower.status().id);
  // So do read-only txns: read on the follower, nothing to forward.
  mvcc::TxnRequest t;
  mvcc::RangeRequest ra;
  ra.key = "a";
  t.success.push_back(mvcc::op_range(ra));
  auto tr = call<mvcc::TxnResponse>(kv, &KvService::txn, t);
  ASSERT_TRUE(tr.is_ok()) << tr.status().to_string();
  EXPECT_EQ(std::get<mvcc::RangeResponse>(tr->body.responses.at(0).response).kvs.size(), 1u);
  EXPECT_EQ(tr->header.member_id, follower.status().id);
}

// A member that knows no leader holds a write until one is elected, as
// etcd's proposals wait (node.h, "No leader"); a call with etcd's
// "hasleader" metadata (clientv3.WithRequireLeader) is refused at once.
TEST_F(KvServiceTest, WithoutALeaderAWriteWaitsForOneUnlessTheCallRequiresALeader) {
  request_timeout_ms_ = 10000;  // the wait for a leader: longer than any election here
  node::Node* leader_p = nullptr;
  node::Node* follower_p = nullptr;
  ASSERT_NO_FATAL_FAILURE(leader_and_follower(&leader_p, &follower_p));
  node::Node& leader = *leader_p;
  node::Node& follower = *follower_p;
  hub_->isolate(leader.status().id, true);  // two voters: nobody can lead now
  ASSERT_TRUE(eventually([&] { return follower.status().leader_id == 0 && leader.status().leader_id == 0; }));
  KvService& kv = *services_[1];

  KvCall require_leader;
  require_leader.require_leader = true;
  const auto t0 = std::chrono::steady_clock::now();
  auto refused = put(kv, "k", "v", require_leader);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s) << "a call requiring a leader waited for one";
  EXPECT_EQ(to_grpc_status(refused.status()).error_message(), "etcdserver: no leader");
  EXPECT_EQ(to_grpc_status(refused.status()).error_code(), grpc::StatusCode::UNAVAILABLE);

  std::promise<Result<KvAnswer<mvcc::PutResponse>>> p;
  kv.put(put_req("k", "v"), KvCall{}, [&p](Result<KvAnswer<mvcc::PutResponse>> a) { p.set_value(std::move(a)); });
  auto f = p.get_future();
  EXPECT_EQ(f.wait_for(200ms), std::future_status::timeout) << "answered without a leader";
  hub_->isolate(leader.status().id, false);
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  auto w = f.get();
  ASSERT_TRUE(w.is_ok()) << w.status().to_string();
  EXPECT_EQ(follower.state_machine().get("k"), std::optional<std::string>("v"));
}

TEST_F(KvServiceTest, AfterStopCallsAreAnsweredServerStopped) {
  single();
  KvService& kv = *services_[0];
  kv.stop();
  kv.stop();  // idempotent
  auto w = put(kv, "k", "v");
  EXPECT_EQ(to_grpc_status(w.status()).error_message(), "etcdserver: server stopped");
  EXPECT_EQ(to_grpc_status(get(kv, "k", false).status()).error_message(),
            "etcdserver: server stopped");
}

// A follower forwards writes to the leader (as Raft proposals), answers with
// its own header once it has applied them, and with its own apply's errors,
// which are the leader's (the same command on the same state).
TEST_F(KvServiceTest, AFollowerForwardsWritesToTheLeader) {
  const std::string grpc_address = "127.0.0.1:" + std::to_string(unused_loopback_port());
  node::Node& leader = start("n1", true, grpc_address);
  ASSERT_TRUE(eventually([&] { return leader.status().state == "leader"; }));
  auto server = GrpcServer::start(leader, *services_[0], grpc_address);
  ASSERT_TRUE(server.is_ok()) << server.status().to_string();
  grpc_.push_back(std::move(server).value());
  node::Node& follower = start("n2", false);
  std::promise<Status> added;
  leader.add_member(node::MemberInfo{"n2", "n2:5000", "n2:8000", follower.incarnation(), ""},
                    10000, [&](Status s) { added.set_value(s); });
  ASSERT_TRUE(added.get_future().get().is_ok());
  // The leader registers its own gRPC address; the follower learns it from the membership.
  ASSERT_TRUE(eventually([&] { return follower.status().leader.grpc_address == grpc_address; }));
  KvService& kv = *services_[1];

  for (int i = 0; i < 5; ++i) {
    auto w = put(kv, "k", std::to_string(i));
    ASSERT_TRUE(w.is_ok()) << w.status().to_string();
    EXPECT_EQ(w->header.member_id, follower.status().id);  // the follower's own header, as etcd's
    EXPECT_EQ(w->header.revision, static_cast<uint64_t>(w->body.header.revision));
    // Answered once applied here: a serializable read on the follower sees it at once.
    auto r = get(kv, "k", true);
    ASSERT_TRUE(r.is_ok());
    ASSERT_EQ(r->body.kvs.size(), 1u);
    EXPECT_EQ(r->body.kvs[0].value, std::to_string(i));
  }

  // Idempotency keys travel in the proposal: a retry is answered, not applied again.
  KvCall c;
  c.idempotency_key = "fwd-1";
  const mvcc::PutRequest once = put_req("once", "v", 0, /*prev_kv=*/true);
  auto first = call<mvcc::PutResponse>(kv, &KvService::put, once, c);
  auto again = call<mvcc::PutResponse>(kv, &KvService::put, once, c);
  ASSERT_TRUE(first.is_ok() && again.is_ok());
  EXPECT_EQ(again->body, first->body);
  EXPECT_FALSE(again->body.prev_kv.has_value());

  // The leader's errors reach the client in etcd's words.
  auto leased = call<mvcc::PutResponse>(kv, &KvService::put, put_req("b", "v", 42));
  EXPECT_EQ(leased.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(leased.status().message(), mvcc::kErrLeaseNotFound);
  ASSERT_TRUE(call<mvcc::CompactionResponse>(kv, &KvService::compact, compaction(3)).is_ok());
  auto old = call<mvcc::CompactionResponse>(kv, &KvService::compact, compaction(2));
  EXPECT_EQ(to_grpc_status(old.status()).error_message(),
            "etcdserver: mvcc: required revision has been compacted");
  EXPECT_EQ(to_grpc_status(old.status()).error_code(), grpc::StatusCode::OUT_OF_RANGE);

  // A client of the leader's gRPC API: writes over etcd's 1.5 MiB are refused as etcd does.
  auto stub = pb::KV::NewStub(grpc::CreateChannel(grpc_address, grpc::InsecureChannelCredentials()));
  for (const size_t bytes : {size_t{1400} << 10, size_t{1600} << 10}) {
    pb::PutRequest req;
    req.set_key("big");
    req.set_value(std::string(bytes, 'x'));
    pb::PutResponse resp;
    grpc::ClientContext ctx;
    const grpc::Status g = stub->Put(&ctx, req, &resp);
    if (bytes < kMaxRequestBytes) {
      EXPECT_TRUE(g.ok()) << g.error_message();
    } else {
      EXPECT_EQ(g.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
      EXPECT_EQ(g.error_message(), "etcdserver: request is too large");
    }
  }

  // Nested txns: 40 levels are served; deeper than protobuf's recursion limit (100
  // messages: a level is two, TxnRequest and RequestOp) is refused by grpc++'s parser
  // (etcd, in Go, has no such limit below its 128-op budget); neither harms the server.
  for (const int depth : {40, 200}) {
    pb::TxnRequest outer;
    pb::TxnRequest* level = &outer;
    for (int i = 1; i < depth; ++i) level = level->add_success()->mutable_request_txn();
    level->add_success()->mutable_request_put()->set_key("deep");
    pb::TxnResponse resp;
    grpc::ClientContext ctx;
    const grpc::Status g = stub->Txn(&ctx, outer, &resp);
    if (depth == 40) {
      EXPECT_TRUE(g.ok()) << static_cast<int>(g.error_code()) << " " << g.error_message();
    } else {
      EXPECT_FALSE(g.ok());
    }
  }
  pb::RangeRequest rr;
  rr.set_key("deep");
  pb::RangeResponse rresp;
  grpc::ClientContext rctx;
  ASSERT_TRUE(stub->Range(&rctx, rr, &rresp).ok());
  EXPECT_EQ(rresp.kvs_size(), 1);
}

// A Node that has stopped never runs the callbacks of calls posted to it;
// stop() must answer them, or their clients (and grpc++'s shutdown) wait forever.
TEST_F(KvServiceTest, StopAnswersCallsTheStoppedNodeWillNeverAnswer) {
  single();
  KvService& kv = *services_[0];
  nodes_[0]->stop();
  std::promise<Status> write, read;
  kv.put(put_req("k", "v"), {},
         [&](Result<KvAnswer<mvcc::PutResponse>> r) { write.set_value(r.status()); });
  mvcc::RangeRequest rr;
  rr.key = "k";
  kv.range(rr, {}, [&](Result<KvAnswer<mvcc::RangeResponse>> r) { read.set_value(r.status()); });
  kv.stop();
  auto w = write.get_future();
  auto r = read.get_future();
  ASSERT_EQ(w.wait_for(5s), std::future_status::ready) << "the write was never answered";
  ASSERT_EQ(r.wait_for(5s), std::future_status::ready) << "the read was never answered";
  EXPECT_EQ(to_grpc_status(w.get()).error_message(), "etcdserver: server stopped");
  EXPECT_EQ(to_grpc_status(r.get()).error_message(), "etcdserver: server stopped");
}

}  // namespace
}  // namespace ckv::etcd
