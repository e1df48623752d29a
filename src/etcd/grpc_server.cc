// etcd v3 gRPC services over grpc++'s synchronous API, mapping cluster_view.h onto etcd's generated messages.
#include "etcd/grpc_server.h"

#include <chrono>
#include <mutex>
#include <utility>

#include <google/protobuf/descriptor.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include "etcd/cluster_view.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "etcd/kv_grpc_service.h"

namespace ckv::etcd {

namespace {

namespace pb = etcdserverpb;

// "/etcdserverpb.KV/Range" -> the message clients see. A method etcd's
// rpc.proto defines is "not implemented yet"; anything else is unknown.
grpc::Status unimplemented(const std::string& method_path) {
  std::string full = method_path;  // "/pkg.Service/Method" -> "pkg.Service.Method"
  if (!full.empty() && full.front() == '/') full.erase(0, 1);
  if (auto slash = full.find('/'); slash != std::string::npos) full[slash] = '.';
  const bool known =
      google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(full) != nullptr;
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                      known ? "consensuskv: " + method_path + " is not implemented yet"
                            : "consensuskv: unknown method " + method_path);
}

void fill_header(const Header& h, pb::ResponseHeader* out) {
  out->set_cluster_id(h.cluster_id);
  out->set_member_id(h.member_id);
  out->set_revision(h.revision);
  out->set_raft_term(h.raft_term);
}

class ClusterService final : public pb::Cluster::Service {
 public:
  ClusterService(node::Node& node, std::string self_grpc_address)
      : node_(node), self_grpc_address_(std::move(self_grpc_address)) {}

  grpc::Status MemberList(grpc::ServerContext*, const pb::MemberListRequest*,
                          pb::MemberListResponse* resp) override {
    const etcd::MemberList list = member_list_for(node_.status(), self_grpc_address_);
    fill_header(list.header, resp->mutable_header());
    for (const Member& m : list.members) {
      pb::Member* out = resp->add_members();
      out->set_id(m.id);
      out->set_name(m.name);
      for (const std::string& u : m.peer_urls) out->add_peerurls(u);
      for (const std::string& u : m.client_urls) out->add_clienturls(u);
      out->set_islearner(m.is_learner);
    }
    return grpc::Status::OK;
  }
  grpc::Status MemberAdd(grpc::ServerContext*, const pb::MemberAddRequest*,
                         pb::MemberAddResponse*) override {
    return unimplemented("/etcdserverpb.Cluster/MemberAdd");
  }
  grpc::Status MemberRemove(grpc::ServerContext*, const pb::MemberRemoveRequest*,
                            pb::MemberRemoveResponse*) override {
    return unimplemented("/etcdserverpb.Cluster/MemberRemove");
  }
  grpc::Status MemberUpdate(grpc::ServerContext*, const pb::MemberUpdateRequest*,
                            pb::MemberUpdateResponse*) override {
    return unimplemented("/etcdserverpb.Cluster/MemberUpdate");
  }
  grpc::Status MemberPromote(grpc::ServerContext*, const pb::MemberPromoteRequest*,
                             pb::MemberPromoteResponse*) override {
    return unimplemented("/etcdserverpb.Cluster/MemberPromote");
  }

 private:
  node::Node& node_;
  const std::string self_grpc_address_;
};

class MaintenanceService final : public pb::Maintenance::Service {
 public:
  explicit MaintenanceService(node::Node& node) : node_(node) {}

  grpc::Status Status(grpc::ServerContext*, const pb::StatusRequest*,
                      pb::StatusResponse* resp) override {
    const etcd::MaintenanceStatus s = status_for(node_.status());
    fill_header(s.header, resp->mutable_header());
    resp->set_version(s.version);
    resp->set_dbsize(static_cast<int64_t>(s.db_size));
    resp->set_leader(s.leader);
    resp->set_raftindex(s.raft_index);
    resp->set_raftterm(s.raft_term);
    resp->set_raftappliedindex(s.raft_applied_index);
    for (const std::string& e : s.errors) resp->add_errors(e);
    resp->set_dbsizeinuse(static_cast<int64_t>(s.db_size_in_use));
    resp->set_islearner(s.is_learner);
    return grpc::Status::OK;
  }
  grpc::Status Alarm(grpc::ServerContext*, const pb::AlarmRequest*, pb::AlarmResponse*) override {
    return unimplemented("/etcdserverpb.Maintenance/Alarm");
  }
  grpc::Status Defragment(grpc::ServerContext*, const pb::DefragmentRequest*,
                          pb::DefragmentResponse*) override {
    return unimplemented("/etcdserverpb.Maintenance/Defragment");
  }
  grpc::Status Hash(grpc::ServerContext*, const pb::HashRequest*, pb::HashResponse*) override {
    return unimplemented("/etcdserverpb.Maintenance/Hash");
  }
  grpc::Status HashKV(grpc::ServerContext*, const pb::HashKVRequest*,
                      pb::HashKVResponse*) override {
    return unimplemented("/etcdserverpb.Maintenance/HashKV");
  }
  grpc::Status Snapshot(grpc::ServerContext*, const pb::SnapshotRequest*,
                        grpc::ServerWriter<pb::SnapshotResponse>*) override {
    return unimplemented("/etcdserverpb.Maintenance/Snapshot");
  }
  grpc::Status MoveLeader(grpc::ServerContext*, const pb::MoveLeaderRequest*,
                          pb::MoveLeaderResponse*) override {
    return unimplemented("/etcdserverpb.Maintenance/MoveLeader");
  }

 private:
  node::Node& node_;
};

// Every method no service above registers (Watch, Lease, Auth, the
// election and lock services, anything unknown): UNIMPLEMENTED, named.
class UnimplementedService final : public grpc::CallbackGenericService {
 public:
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override {
    class Reactor final : public grpc::ServerGenericBidiReactor {
     public:
      explicit Reactor(const std::string& method) { Finish(unimplemented(method)); }
      void OnDone() override { delete this; }
    };
    return new Reactor(ctx->method());
  }
};

}  // namespace

struct GrpcServer::Impl {
  Impl(node::Node& node, KvService& kv_service, std::string address)
      : kv(make_kv_grpc_service(kv_service)), cluster(node, address), maintenance(node) {}
  std::unique_ptr<grpc::Service> kv;
  ClusterService cluster;
  MaintenanceService maintenance;
  UnimplementedService rest;
  std::unique_ptr<grpc::Server> server;
  std::once_flag stopped;
};

Result<std::unique_ptr<GrpcServer>> GrpcServer::start(node::Node& node, KvService& kv,
                                                      const std::string& listen_address) {
  auto impl = std::make_unique<Impl>(node, kv, listen_address);
  grpc::ServerBuilder builder;
  int bound_port = 0;
  // Plaintext for now: TLS (-cert-file, -key-file) is part of issue 8's second half.
  builder.AddListeningPort(listen_address, grpc::InsecureServerCredentials(), &bound_port);
  // grpc++ binds with SO_REUSEPORT by default: a second kvnode on the same
  // -grpc-address would then share the port silently instead of failing.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(kMaxGrpcRequestBytes);
  grpc::ResourceQuota quota("ckv-etcd-grpc");
  quota.SetMaxThreads(kMaxGrpcThreads);
  builder.SetResourceQuota(quota);
  builder.RegisterService(impl->kv.get());
  builder.RegisterService(&impl->cluster);
  builder.RegisterService(&impl->maintenance);
  builder.RegisterCallbackGenericService(&impl->rest);
  impl->server = builder.BuildAndStart();
  if (!impl->server || bound_port == 0) {
    return Status(StatusCode::kIo,
                  "cannot serve gRPC on " + listen_address + " (address in use or invalid?)");
  }
  return std::unique_ptr<GrpcServer>(new GrpcServer(std::move(impl)));
}

GrpcServer::GrpcServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

GrpcServer::~GrpcServer() { stop(); }

void GrpcServer::stop() {
  std::call_once(impl_->stopped, [this] {
    impl_->server->Shutdown(std::chrono::system_clock::now() +
                            std::chrono::milliseconds(kGrpcShutdownGraceMs));
    impl_->server->Wait();
  });
}

}  // namespace ckv::etcd
