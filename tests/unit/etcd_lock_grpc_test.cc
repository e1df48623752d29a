// Unit tests for src/etcd/lock_service.h and its gRPC service on a real in-process Node: order, cancel, stop.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "etcd/etcdserver/api/v3lock/v3lockpb/v3lock.grpc.pb.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "etcd/grpc_server.h"
#include "etcd/kv_service.h"
#include "etcd/lease_service.h"
#include "etcd/lock_service.h"
#include "loopback_port.h"
#include "memory_transport.h"

namespace ckv::etcd {
namespace {

using namespace std::chrono_literals;

// One voter serving KV, Lease and Lock over gRPC on loopback.
class LockGrpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() /
            ("ckv_lock_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(root_);
    address_ = "127.0.0.1:" + std::to_string(testing_support::unused_loopback_port());
    node::NodeOptions o;
    o.name = "n1";
    o.raft_address = "n1:5000";
    o.api_address = "n1:8000";
    o.grpc_address = address_;
    o.data_dir = (root_ / "n1").string();
    o.bootstrap = true;
    o.tick_ms = 10;
    o.election_ticks = 10;
    o.heartbeat_ticks = 1;
    auto n = node::Node::open(o, std::make_unique<transport::MemoryTransport>(hub_, node::node_id_for("n1")));
    ASSERT_TRUE(n.is_ok()) << n.status().to_string();
    node_ = std::move(n).value();
    node_->start();
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (node_->status().state != "leader" && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
    }
    ASSERT_EQ(node_->status().state, "leader");
    kv_ = std::make_unique<KvService>(*node_);
    lease_ = std::make_unique<LeaseService>(*node_);
    lock_ = std::make_unique<LockService>(*node_, *kv_, *lease_);
    auto s = GrpcServer::start(*node_, *kv_, address_, std::nullopt, kDefaultGrpcHandshakeTimeoutMs, lease_.get(),
                               nullptr, lock_.get());
    ASSERT_TRUE(s.is_ok()) << s.status().to_string();
    server_ = std::move(s).value();
    channel_ = grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
  }

  void TearDown() override {
    node_->stop();
    lock_->stop();
    kv_->stop();
    lease_->stop();
    server_->stop();
    std::filesystem::remove_all(root_);
  }

  int64_t grant(int64_t id) {
    auto stub = etcdserverpb::Lease::NewStub(channel_);
    grpc::ClientContext ctx;
    etcdserverpb::LeaseGrantRequest req;
    req.set_id(id);
    req.set_ttl(100);
    etcdserverpb::LeaseGrantResponse resp;
    EXPECT_TRUE(stub->LeaseGrant(&ctx, req, &resp).ok());
    return resp.id();
  }

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

  bool exists(const std::string& key) {
    auto stub = etcdserverpb::KV::NewStub(channel_);
    grpc::ClientContext ctx;
    etcdserverpb::RangeRequest req;
    req.set_key(key);
    etcdserverpb::RangeResponse resp;
    EXPECT_TRUE(stub->Range(&ctx, req, &resp).ok());
    return resp.kvs_size() == 1;
  }

  template <typename F>
  bool eventually(F f) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (f()) return true;
      std::this_thread::sleep_for(5ms);
    }
    return f();
  }

  std::shared_ptr<transport::MemoryHub> hub_ = std::make_shared<transport::MemoryHub>();
  std::filesystem::path root_;
  std::string address_;
  std::unique_ptr<node::Node> node_;
  std::unique_ptr<KvService> kv_;
  std::unique_ptr<LeaseService> lease_;
  std::unique_ptr<LockService> lock_;
  std::unique_ptr<GrpcServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
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
