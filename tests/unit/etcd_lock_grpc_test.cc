// Unit tests for src/etcd/lock_service.h and its gRPC service on a real in-process Node: order, cancel, stop.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

#include "etcd/etcdserver/api/v3lock/v3lockpb/v3lock.grpc.pb.h"
#include "recipe_grpc_fixture.h"

namespace ckv::etcd {
namespace {

using namespace std::chrono_literals;

class LockGrpcTest : public RecipeGrpcTest {
 protected:
  grpc::Status lock(const std::string& name, int64_t lease, v3lockpb::LockResponse* resp,
                    std::chrono::milliseconds deadline = 10s) {
    auto stub = v3lockpb::Lock::NewStub(channel_);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + deadline);
    v3lockpb::LockRequest req;
    req.set_name(name);
    req.set_lease(lease);
    return stub->Lock(&ctx, req, resp);
  }

  grpc::Status unlock(const std::string& key) {
    auto stub = v3lockpb::Lock::NewStub(channel_);
    grpc::ClientContext ctx;
    v3lockpb::UnlockRequest req;
    req.set_key(key);
    v3lockpb::UnlockResponse resp;
    return stub->Unlock(&ctx, req, &resp);
  }
};

TEST(LockKey, IsTheNameSlashTheLeaseInGosHex) {
  EXPECT_EQ(lock_key("m", 0x694d77a1b2c3), "m/694d77a1b2c3");
  EXPECT_EQ(lock_key("", 91), "/5b");
  EXPECT_EQ(lock_key("m", -26), "m/-1a");
}

// A waiter whose call ends (its deadline: grpc++ cancels it) gives up its
// place: its key goes, and the next waiter is served when the holder unlocks.
TEST_F(LockGrpcTest, AWaiterWhoseCallIsCancelledGivesUpItsKey) {
  const int64_t a = grant(201), b = grant(202), c = grant(203);
  v3lockpb::LockResponse held;
  ASSERT_TRUE(lock("L", a, &held).ok());
  EXPECT_EQ(held.key(), lock_key("L", a));
  v3lockpb::LockResponse gave_up;
  const grpc::Status s = lock("L", b, &gave_up, 300ms);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_TRUE(eventually([&] { return !exists(lock_key("L", b)); })) << "the cancelled waiter's key stayed";
  v3lockpb::LockResponse next;
  std::promise<grpc::Status> third;
  std::thread t([&] { third.set_value(lock("L", c, &next)); });
  ASSERT_TRUE(eventually([&] { return exists(lock_key("L", c)); }));
  ASSERT_TRUE(unlock(held.key()).ok());
  auto f = third.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(f.get().ok());
  EXPECT_EQ(next.key(), lock_key("L", c));
  t.join();
}

TEST_F(LockGrpcTest, ErrorsAreUnknownWithEtcdsText) {
  v3lockpb::LockResponse resp;
  const grpc::Status s = lock("L", 12345, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNKNOWN);
  EXPECT_EQ(s.error_message(), "etcdserver: requested lease not found");
  const grpc::Status u = unlock("");
  EXPECT_EQ(u.error_code(), grpc::StatusCode::UNKNOWN);
  EXPECT_EQ(u.error_message(), "etcdserver: key is not provided");
}

// stop() answers a waiting Lock at once (the node is going away).
TEST_F(LockGrpcTest, StopAnswersWaitersWithServerStopped) {
  const int64_t a = grant(301), b = grant(302);
  v3lockpb::LockResponse held;
  ASSERT_TRUE(lock("S", a, &held).ok());
  std::promise<Result<LockAnswer>> waiting;
  lock_->lock("S", b, KvCall{}, [&](Result<LockAnswer> r) { waiting.set_value(std::move(r)); });
  ASSERT_TRUE(eventually([&] { return exists(lock_key("S", b)); }));
  lock_->stop();
  auto f = waiting.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  const Result<LockAnswer> r = f.get();
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().message(), "etcdserver: server stopped");
}

}  // namespace
}  // namespace ckv::etcd
