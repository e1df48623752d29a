// A one-voter Node serving KV, Lease and the recipes' services (v3lock, v3election) over gRPC on loopback, for their unit tests and the gRPC front end's.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "etcd/election_service.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "etcd/grpc_server.h"
#include "etcd/kv_service.h"
#include "etcd/lease_service.h"
#include "etcd/lock_service.h"
#include "loopback_port.h"
#include "memory_transport.h"

namespace ckv::etcd {

class RecipeGrpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    using namespace std::chrono_literals;
    root_ = std::filesystem::temp_directory_path() /
            ("ckv_recipe_" + std::to_string(::getpid()) + "_" +
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
    ASSERT_TRUE(eventually([&] { return node_->status().state == "leader"; }));
    kv_ = std::make_unique<KvService>(*node_);
    lease_ = std::make_unique<LeaseService>(*node_);
    lock_ = std::make_unique<LockService>(*node_, *kv_, *lease_);
    election_ = std::make_unique<ElectionService>(*node_, *kv_, *lease_);
    auto s = GrpcServer::start(*node_, *kv_, address_, std::nullopt, kDefaultGrpcHandshakeTimeoutMs, lease_.get(),
                               nullptr, lock_.get(), election_.get(), nullptr, front_end_);
    ASSERT_TRUE(s.is_ok()) << s.status().to_string();
    server_ = std::move(s).value();
    channel_ = grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
  }

  void TearDown() override {
    node_->stop();
    election_->stop();
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
  static bool eventually(F f) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      if (f()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return f();
  }

  // Which server reads the port; the front end's own tests (grpc_frontend_test.cc) set kOwn.
  GrpcFrontEnd front_end_ = GrpcFrontEnd::kGrpcpp;
  std::shared_ptr<transport::MemoryHub> hub_ = std::make_shared<transport::MemoryHub>();
  std::filesystem::path root_;
  std::string address_;
  std::unique_ptr<node::Node> node_;
  std::unique_ptr<KvService> kv_;
  std::unique_ptr<LeaseService> lease_;
  std::unique_ptr<LockService> lock_;
  std::unique_ptr<ElectionService> election_;
  std::unique_ptr<GrpcServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

}  // namespace ckv::etcd
