// Unit tests for src/etcd/election_service.h and its gRPC service on a real in-process Node: order, proclaim, observe, cancel, stop.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

#include "etcd/etcdserver/api/v3election/v3electionpb/v3election.grpc.pb.h"
#include "recipe_grpc_fixture.h"

namespace ckv::etcd {
namespace {

using namespace std::chrono_literals;
namespace epb = v3electionpb;

class ElectionGrpcTest : public RecipeGrpcTest {
 protected:
  std::unique_ptr<epb::Election::Stub> stub() { return epb::Election::NewStub(channel_); }

  grpc::Status campaign(const std::string& name, int64_t lease, const std::string& value,
                        epb::CampaignResponse* resp, std::chrono::milliseconds deadline = 10s) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + deadline);
    epb::CampaignRequest req;
    req.set_name(name);
    req.set_lease(lease);
    req.set_value(value);
    return stub()->Campaign(&ctx, req, resp);
  }

  grpc::Status proclaim(const epb::LeaderKey& leader, const std::string& value) {
    grpc::ClientContext ctx;
    epb::ProclaimRequest req;
    *req.mutable_leader() = leader;
    req.set_value(value);
    epb::ProclaimResponse resp;
    return stub()->Proclaim(&ctx, req, &resp);
  }

  grpc::Status resign(const epb::LeaderKey& leader) {
    grpc::ClientContext ctx;
    epb::ResignRequest req;
    *req.mutable_leader() = leader;
    epb::ResignResponse resp;
    return stub()->Resign(&ctx, req, &resp);
  }

  grpc::Status leader(const std::string& name, epb::LeaderResponse* resp) {
    grpc::ClientContext ctx;
    epb::LeaderRequest req;
    req.set_name(name);
    return stub()->Leader(&ctx, req, resp);
  }

  // A campaign on its own thread (it waits until it wins).
  struct Pending {
    epb::CampaignResponse resp;
    std::future<grpc::Status> status;
    std::thread t;
    ~Pending() {
      if (t.joinable()) t.join();
    }
  };
  std::unique_ptr<Pending> campaign_in_background(const std::string& name, int64_t lease, const std::string& value) {
    auto p = std::make_unique<Pending>();
    std::promise<grpc::Status> done;
    p->status = done.get_future();
    p->t = std::thread([this, p = p.get(), name, lease, value, done = std::move(done)]() mutable {
      done.set_value(campaign(name, lease, value, &p->resp));
    });
    return p;
  }
};

TEST(ElectionKey, IsTheNameSlashTheLeaseInGosHex) {
  EXPECT_EQ(election_key("e", 0x694d77a1b2c3), "e/694d77a1b2c3");
  EXPECT_EQ(election_key("", 91), "/5b");
  EXPECT_EQ(election_key("e", -26), "e/-1a");
}

// Campaigners win in the order they campaigned; Resign hands over, a lease's revoke too.
TEST_F(ElectionGrpcTest, CampaignersWinInOrderAsLeadersResignOrLoseTheirLease) {
  const int64_t a = grant(101), b = grant(102), c = grant(103);
  epb::CampaignResponse first;
  ASSERT_TRUE(campaign("E", a, "va", &first).ok());
  EXPECT_EQ(first.leader().key(), election_key("E", a));
  EXPECT_EQ(first.leader().name(), "E");
  EXPECT_EQ(first.leader().lease(), a);
  EXPECT_EQ(first.leader().rev(), first.header().revision());
  auto second = campaign_in_background("E", b, "vb");
  ASSERT_TRUE(eventually([&] { return exists(election_key("E", b)); }));
  auto third = campaign_in_background("E", c, "vc");
  ASSERT_TRUE(eventually([&] { return exists(election_key("E", c)); }));
  EXPECT_EQ(second->status.wait_for(200ms), std::future_status::timeout) << "b won while a leads";
  epb::LeaderResponse l;
  ASSERT_TRUE(leader("E", &l).ok());
  EXPECT_EQ(l.kv().value(), "va");

  ASSERT_TRUE(resign(first.leader()).ok());
  ASSERT_EQ(second->status.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(second->status.get().ok());
  EXPECT_EQ(second->resp.leader().key(), election_key("E", b));
  EXPECT_EQ(third->status.wait_for(200ms), std::future_status::timeout) << "c won while b leads";
  ASSERT_TRUE(leader("E", &l).ok());
  EXPECT_EQ(l.kv().value(), "vb");

  // b's lease ends: its key goes, and c leads.
  auto lease_stub = etcdserverpb::Lease::NewStub(channel_);
  grpc::ClientContext ctx;
  etcdserverpb::LeaseRevokeRequest revoke;
  revoke.set_id(b);
  etcdserverpb::LeaseRevokeResponse revoked;
  ASSERT_TRUE(lease_stub->LeaseRevoke(&ctx, revoke, &revoked).ok());
  ASSERT_EQ(third->status.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(third->status.get().ok());
  ASSERT_TRUE(leader("E", &l).ok());
  EXPECT_EQ(l.kv().value(), "vc");
}

TEST_F(ElectionGrpcTest, ProclaimNeedsTheLeadershipAndErrorsAreUnknownWithEtcdsText) {
  const int64_t a = grant(201), b = grant(202);
  epb::CampaignResponse won;
  ASSERT_TRUE(campaign("P", a, "v1", &won).ok());
  ASSERT_TRUE(proclaim(won.leader(), "v2").ok());
  epb::LeaderResponse l;
  ASSERT_TRUE(leader("P", &l).ok());
  EXPECT_EQ(l.kv().value(), "v2");
  EXPECT_EQ(l.kv().lease(), a);
  // Not the leader: another lease's key, or the right key with another create revision.
  epb::LeaderKey other = won.leader();
  other.set_key(election_key("P", b));
  other.set_lease(b);
  grpc::Status s = proclaim(other, "x");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNKNOWN);
  EXPECT_EQ(s.error_message(), "election: not leader");
  epb::LeaderKey stale = won.leader();
  stale.set_rev(won.leader().rev() - 1);
  EXPECT_EQ(proclaim(stale, "x").error_message(), "election: not leader");
  // Resigning what one does not lead is no error, and changes nothing.
  EXPECT_TRUE(resign(stale).ok());
  EXPECT_TRUE(exists(won.leader().key()));

  grpc::ClientContext ctx;
  epb::ProclaimRequest no_leader;
  epb::ProclaimResponse resp;
  s = stub()->Proclaim(&ctx, no_leader, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNKNOWN);
  EXPECT_EQ(s.error_message(), "\"leader\" field must be provided");
  s = leader("nobody", &l);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNKNOWN);
  EXPECT_EQ(s.error_message(), "election: no leader");
  epb::CampaignResponse refused;
  s = campaign("P", 12345, "v", &refused);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNKNOWN);
  EXPECT_EQ(s.error_message(), "etcdserver: requested lease not found");
}

// Observe: the leader's value, each proclamation, then the next leader once it resigns.
TEST_F(ElectionGrpcTest, ObserveSeesProclamationsAndLeaderChanges) {
  const int64_t a = grant(301), b = grant(302);
  grpc::ClientContext ctx;
  epb::LeaderRequest req;
  req.set_name("O");
  auto reader = stub()->Observe(&ctx, req);
  epb::CampaignResponse won;
  ASSERT_TRUE(campaign("O", a, "a1", &won).ok());  // the first put under the empty prefix
  auto next_value = [&] {
    epb::LeaderResponse r;
    return reader->Read(&r) ? r.kv().value() : std::string("<ended>");
  };
  EXPECT_EQ(next_value(), "a1");
  ASSERT_TRUE(proclaim(won.leader(), "a2").ok());
  EXPECT_EQ(next_value(), "a2");
  auto second = campaign_in_background("O", b, "b1");
  ASSERT_TRUE(eventually([&] { return exists(election_key("O", b)); }));
  ASSERT_TRUE(resign(won.leader()).ok());
  EXPECT_EQ(next_value(), "b1");
  ASSERT_EQ(second->status.wait_for(10s), std::future_status::ready);
  ctx.TryCancel();
  epb::LeaderResponse rest;
  while (reader->Read(&rest)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

// A waiter whose call ends (its deadline) resigns: its key goes, the next waiter is served.
TEST_F(ElectionGrpcTest, AWaitingCampaignWhoseCallIsCancelledResigns) {
  const int64_t a = grant(401), b = grant(402), c = grant(403);
  epb::CampaignResponse won;
  ASSERT_TRUE(campaign("C", a, "a", &won).ok());
  epb::CampaignResponse gave_up;
  EXPECT_EQ(campaign("C", b, "b", &gave_up, 300ms).error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_TRUE(eventually([&] { return !exists(election_key("C", b)); })) << "the cancelled campaign's key stayed";
  auto third = campaign_in_background("C", c, "c");
  ASSERT_TRUE(eventually([&] { return exists(election_key("C", c)); }));
  ASSERT_TRUE(resign(won.leader()).ok());
  ASSERT_EQ(third->status.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(third->status.get().ok());
}

// stop() answers a waiting Campaign and ends an observation at once (the node is going away).
TEST_F(ElectionGrpcTest, StopAnswersWaitersAndObserversWithServerStopped) {
  const int64_t a = grant(501), b = grant(502);
  epb::CampaignResponse won;
  ASSERT_TRUE(campaign("S", a, "a", &won).ok());
  std::promise<Result<CampaignAnswer>> waiting;
  election_->campaign("S", b, "b", KvCall{}, [&](Result<CampaignAnswer> r) { waiting.set_value(std::move(r)); });
  ASSERT_TRUE(eventually([&] { return exists(election_key("S", b)); }));
  std::atomic<int> wakes{0};
  std::unique_ptr<Observation> obs = election_->observe("S", KvCall{}, [&] { wakes.fetch_add(1); });
  ASSERT_TRUE(eventually([&] { return wakes.load() > 0; }));
  std::optional<LeaderAnswer> first = obs->next();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->kv.value, "a");
  election_->stop();
  auto f = waiting.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  const Result<CampaignAnswer> r = f.get();
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().message(), "etcdserver: server stopped");
  ASSERT_TRUE(eventually([&] { return obs->ended().has_value(); }));
  EXPECT_EQ(obs->ended()->message(), "etcdserver: server stopped");
  obs->close();
}

}  // namespace
}  // namespace ckv::etcd
