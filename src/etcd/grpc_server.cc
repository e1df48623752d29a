// etcd v3 gRPC services over grpc++'s synchronous API, mapping cluster_view.h onto etcd's generated messages.
#include "etcd/grpc_server.h"

#include <algorithm>
#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <utility>

#include <absl/synchronization/mutex.h>
#include <google/protobuf/descriptor.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include "etcd/auth_grpc_service.h"
#include "etcd/auth_service.h"
#include "etcd/backup_stream.h"
#include "etcd/cluster_view.h"
#include "etcd/header_convert.h"
#include "etcd/maintenance_ops.h"
#include "etcd/maintenance_convert.h"
#include "etcd/kv_convert.h"
#include "etcd/member_ops.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "etcd/grpc_credentials.h"
#include "etcd/grpc_frontend.h"
#include "etcd/grpc_metrics.h"
#include "etcd/grpc_tls.h"
#include "etcd/kv_grpc_service.h"
#include "etcd/lease_grpc_service.h"
#include "etcd/lock_grpc_service.h"
#include "etcd/election_grpc_service.h"
#include "etcd/watch_grpc_service.h"

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

// Metadata on a member call one node forwards to the leader: the receiver
// answers it itself or fails, never forwards it again (no loops on a stale view).
constexpr char kForwardedMetadata[] = "ckv-forwarded";
// Channels to leaders kept for forwarding; past it the cache starts over
// (the leader's address changes only with the leadership).
constexpr size_t kMaxForwardChannels = 8;
// Time beyond the call's own deadline that a handler waits for the node's
// callback before it gives up (the node always calls back unless stopping).
constexpr int kCallbackGraceMs = 1000;

void fill_member(const Member& m, pb::Member* out) {
  out->set_id(m.id);
  out->set_name(m.name);
  for (const std::string& u : m.peer_urls) out->add_peerurls(u);
  for (const std::string& u : m.client_urls) out->add_clienturls(u);
  out->set_islearner(m.is_learner);
}

Member from_pb(const pb::Member& m) {
  Member out;
  out.id = m.id();
  out.name = m.name();
  out.peer_urls.assign(m.peerurls().begin(), m.peerurls().end());
  out.client_urls.assign(m.clienturls().begin(), m.clienturls().end());
  out.is_learner = m.islearner();
  return out;
}

// The leader's members, as a follower relays them if its own view lags.
template <typename Response>
void copy_members(const Response& up, MemberReply* got) {
  for (const pb::Member& m : up.members()) got->list.members.push_back(from_pb(m));
}

template <typename Response>
void fill_list(const MemberList& list, Response* resp) {
  fill_response_header(list.header, resp->mutable_header());
  for (const Member& m : list.members) fill_member(m, resp->add_members());
}

grpc::Status to_grpc(const EtcdError& e) {
  return e.ok() ? grpc::Status::OK : grpc::Status(static_cast<grpc::StatusCode>(e.code), e.message);
}

// Cluster: MemberList from this node's view; member changes on the leader
// (etcd/member_ops.h), forwarded there over gRPC by a follower, which then
// answers once its own view shows the change, with its own header (as etcd).
class ClusterService final : public pb::Cluster::Service {
 public:
  // member_credentials: for calls to other members' gRPC ports (grpc_tls.h):
  // TLS when this node serves TLS, as every member then does.
  ClusterService(node::Node& node, std::string self_grpc_address,
                 std::shared_ptr<grpc::ChannelCredentials> member_credentials, AuthService* auth)
      : node_(node),
        auth_(auth),
        self_grpc_address_(std::move(self_grpc_address)),
        member_credentials_(std::move(member_credentials)) {}

  grpc::Status MemberList(grpc::ServerContext*, const pb::MemberListRequest*,
                          pb::MemberListResponse* resp) override {
    fill_list(member_list_for(node_.status(), self_grpc_address_), resp);
    return grpc::Status::OK;
  }
  grpc::Status MemberAdd(grpc::ServerContext* ctx, const pb::MemberAddRequest* req,
                         pb::MemberAddResponse* resp) override {
    MemberRequest r;
    r.call = MemberCall::kAdd;
    r.peer_urls.assign(req->peerurls().begin(), req->peerurls().end());
    r.is_learner = req->islearner();
    const MemberReply out =
        call(ctx, r, [&](pb::Cluster::Stub& stub, grpc::ClientContext* c, MemberReply* got) {
          pb::MemberAddResponse up;
          grpc::Status st = stub.MemberAdd(c, *req, &up);
          if (st.ok()) got->member = from_pb(up.member());
          copy_members(up, got);
          return st;
        });
    if (!out.error.ok()) return to_grpc(out.error);
    fill_list(out.list, resp);
    fill_member(out.member, resp->mutable_member());
    return grpc::Status::OK;
  }
  grpc::Status MemberRemove(grpc::ServerContext* ctx, const pb::MemberRemoveRequest* req,
                            pb::MemberRemoveResponse* resp) override {
    MemberRequest r;
    r.call = MemberCall::kRemove;
    r.id = req->id();
    return simple(ctx, r, resp,
                  [&](pb::Cluster::Stub& stub, grpc::ClientContext* c, MemberReply* got) {
                    pb::MemberRemoveResponse up;
                    grpc::Status st = stub.MemberRemove(c, *req, &up);
                    copy_members(up, got);
                    return st;
                  });
  }
  grpc::Status MemberUpdate(grpc::ServerContext* ctx, const pb::MemberUpdateRequest* req,
                            pb::MemberUpdateResponse* resp) override {
    MemberRequest r;
    r.call = MemberCall::kUpdate;
    r.id = req->id();
    r.peer_urls.assign(req->peerurls().begin(), req->peerurls().end());
    return simple(ctx, r, resp,
                  [&](pb::Cluster::Stub& stub, grpc::ClientContext* c, MemberReply* got) {
                    pb::MemberUpdateResponse up;
                    grpc::Status st = stub.MemberUpdate(c, *req, &up);
                    copy_members(up, got);
                    return st;
                  });
  }
  grpc::Status MemberPromote(grpc::ServerContext* ctx, const pb::MemberPromoteRequest* req,
                             pb::MemberPromoteResponse* resp) override {
    MemberRequest r;
    r.call = MemberCall::kPromote;
    r.id = req->id();
    return simple(ctx, r, resp,
                  [&](pb::Cluster::Stub& stub, grpc::ClientContext* c, MemberReply* got) {
                    pb::MemberPromoteResponse up;
                    grpc::Status st = stub.MemberPromote(c, *req, &up);
                    copy_members(up, got);
                    return st;
                  });
  }

 private:
  using Forward =
      std::function<grpc::Status(pb::Cluster::Stub&, grpc::ClientContext*, MemberReply*)>;

  template <typename Response>
  grpc::Status simple(grpc::ServerContext* ctx, const MemberRequest& r, Response* resp,
                      const Forward& forward) {
    const MemberReply out = call(ctx, r, forward);
    if (!out.error.ok()) return to_grpc(out.error);
    fill_list(out.list, resp);
    return grpc::Status::OK;
  }

  // The call's deadline, capped at kMemberCallTimeoutMs.
  static int timeout_ms_for(const grpc::ServerContext* ctx) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        ctx->deadline() - std::chrono::system_clock::now());
    return static_cast<int>(std::clamp<int64_t>(left.count(), 1, kMemberCallTimeoutMs));
  }

  // Runs start(cb) and waits for cb's reply (the node always calls back; the
  // grace only guards a node that is stopping).
  MemberReply wait(int timeout_ms, const std::function<void(MemberReplyCallback)>& start) {
    auto done = std::make_shared<std::promise<MemberReply>>();
    std::future<MemberReply> reply = done->get_future();
    start([done](MemberReply r) { done->set_value(std::move(r)); });
    if (reply.wait_for(std::chrono::milliseconds(timeout_ms + kCallbackGraceMs)) !=
        std::future_status::ready) {
      MemberReply r;
      r.error = EtcdError{grpc_code::kUnavailable, "etcdserver: request timed out"};
      return r;
    }
    return reply.get();
  }

  MemberReply call(grpc::ServerContext* ctx, const MemberRequest& req, const Forward& forward) {
    const int timeout_ms = timeout_ms_for(ctx);
    const node::NodeStatus st = node_.status();
    MemberReply failed;
    // etcd's checkMembershipOperationPermission: root only, once auth is on.
    // A follower checks and forwards the caller's token; the leader checks again.
    const Credentials creds = credentials_from(*ctx);
    if (auth_ != nullptr) {
      if (Status s = auth_->require_admin(creds, "a member change"); !s.is_ok()) {
        failed.error = EtcdError{grpc_code_of(s), s.message()};
        return failed;
      }
    }
    if (st.leader_id == raft::kNoNode) {
      failed.error = EtcdError{grpc_code::kUnavailable, kErrNoLeader};
      return failed;
    }
    if (st.leader_id == st.id) {
      return wait(timeout_ms, [&](MemberReplyCallback cb) {
        change_membership(node_, req, self_grpc_address_, timeout_ms, std::move(cb));
      });
    }
    if (ctx->client_metadata().count(kForwardedMetadata) != 0) {
      failed.error = EtcdError{grpc_code::kUnavailable, kErrLeaderChanged};
      return failed;
    }
    if (st.leader.grpc_address.empty()) {
      failed.error = EtcdError{grpc_code::kUnavailable,
                               "consensuskv: the leader " + st.leader.name +
                                   " serves no gRPC API (or has not "
                                   "registered its -grpc-address yet); retry, or ask the leader"};
      return failed;
    }
    grpc::ClientContext up;
    up.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
    up.AddMetadata(kForwardedMetadata, "1");
    forward_credentials(creds, &up, auth_);
    pb::Cluster::Stub stub(channel_to(st.leader.grpc_address));
    MemberReply leader_reply;
    const grpc::Status s = forward(stub, &up, &leader_reply);
    if (!s.ok()) {
      failed.error = EtcdError{static_cast<int>(s.error_code()), s.error_message()};
      return failed;
    }
    return wait(timeout_ms, [&](MemberReplyCallback cb) {
      wait_until_shown(node_, req, std::move(leader_reply), self_grpc_address_, timeout_ms,
                       std::move(cb));
    });
  }

  std::shared_ptr<grpc::Channel> channel_to(const std::string& address) {
    std::lock_guard lock(channels_mu_);
    auto it = channels_.find(address);
    if (it != channels_.end()) return it->second;
    if (channels_.size() >= kMaxForwardChannels) channels_.clear();
    auto channel = grpc::CreateChannel(address, member_credentials_);
    channels_.emplace(address, channel);
    return channel;
  }

  node::Node& node_;
  AuthService* const auth_;
  const std::string self_grpc_address_;
  const std::shared_ptr<grpc::ChannelCredentials> member_credentials_;
  std::mutex channels_mu_;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_;
};

// Waits for a maintenance_service.h call's answer, within the call's
// deadline capped at cap_ms (plus the grace for a node that is stopping).
template <typename T>
Result<T> wait_for(const grpc::ServerContext& ctx, int cap_ms,
                   const std::function<void(MaintenanceService::Done<T>)>& start) {
  const int timeout_ms = static_cast<int>(std::clamp<int64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(ctx.deadline() - std::chrono::system_clock::now())
          .count(),
      1, cap_ms));
  auto done = std::make_shared<std::promise<Result<T>>>();
  std::future<Result<T>> answer = done->get_future();
  start([done](Result<T> r) { done->set_value(std::move(r)); });
  if (answer.wait_for(std::chrono::milliseconds(timeout_ms + kCallbackGraceMs)) != std::future_status::ready) {
    return Status(StatusCode::kTimeout, kErrTimeout);
  }
  return answer.get();
}

// The longest a maintenance call waits: an alarm change commits like a write;
// a defragment writes a whole snapshot (etcdctl's --command-timeout, 5 s by
// default, is usually shorter, and the defragment then goes on regardless).
constexpr int kAlarmTimeoutMs = 10'000;
constexpr int kDefragmentTimeoutMs = 600'000;
constexpr int kHashTimeoutMs = 600'000;

class MaintenanceGrpcService final : public pb::Maintenance::Service {
 public:
  MaintenanceGrpcService(node::Node& node, AuthService* auth, MaintenanceService& ops)
      : node_(node), auth_(auth), ops_(ops) {}

  grpc::Status Status(grpc::ServerContext*, const pb::StatusRequest*,
                      pb::StatusResponse* resp) override {
    const etcd::MaintenanceStatus s = status_for(node_.status());
    fill_response_header(s.header, resp->mutable_header());
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
  grpc::Status Alarm(grpc::ServerContext* ctx, const pb::AlarmRequest* req, pb::AlarmResponse* resp) override {
    const fsm::AlarmRequest r = etcd::from_pb(*req);
    const Credentials creds = credentials_from(*ctx);
    auto a = wait_for<AlarmAnswer>(*ctx, kAlarmTimeoutMs, [&](MaintenanceService::Done<AlarmAnswer> done) {
      ops_.alarm(r, creds, kAlarmTimeoutMs, std::move(done));
    });
    if (!a.is_ok()) return to_grpc(maintenance_error(a.status()));
    to_pb(a.value(), resp);
    return grpc::Status::OK;
  }
  grpc::Status Defragment(grpc::ServerContext* ctx, const pb::DefragmentRequest*,
                          pb::DefragmentResponse*) override {
    const Credentials creds = credentials_from(*ctx);
    auto h = wait_for<Header>(*ctx, kDefragmentTimeoutMs, [&](MaintenanceService::Done<Header> done) {
      ops_.defragment(creds, std::move(done));
    });
    // etcd 3.4 answers an empty message (no header) once it is done.
    return h.is_ok() ? grpc::Status::OK : to_grpc(maintenance_error(h.status()));
  }
  grpc::Status Hash(grpc::ServerContext* ctx, const pb::HashRequest*, pb::HashResponse* resp) override {
    const Credentials creds = credentials_from(*ctx);
    auto h = wait_for<HashAnswer>(*ctx, kHashTimeoutMs, [&](MaintenanceService::Done<HashAnswer> done) {
      ops_.hash(creds, std::move(done));
    });
    if (!h.is_ok()) return to_grpc(maintenance_error(h.status()));
    to_pb(h.value(), resp);
    return grpc::Status::OK;
  }
  grpc::Status HashKV(grpc::ServerContext* ctx, const pb::HashKVRequest* req,
                      pb::HashKVResponse* resp) override {
    const Credentials creds = credentials_from(*ctx);
    auto h = wait_for<HashAnswer>(*ctx, kHashTimeoutMs, [&](MaintenanceService::Done<HashAnswer> done) {
      ops_.hash_kv(creds, req->revision(), std::move(done));
    });
    if (!h.is_ok()) return to_grpc(maintenance_error(h.status()));
    to_pb(h.value(), resp);
    return grpc::Status::OK;
  }
  // etcd's stream: chunks of the copy with remaining_bytes, then its SHA-256
  // as the last blob (backup_stream.h). Write() blocks under flow control,
  // so a slow client holds one chunk and this call's thread, nothing more.
  grpc::Status Snapshot(grpc::ServerContext* ctx, const pb::SnapshotRequest*,
                        grpc::ServerWriter<pb::SnapshotResponse>* writer) override {
    if (grpc::Status refused = require_root(*ctx, "a snapshot"); !refused.ok()) return refused;
    auto stream = BackupStream::open(node_, kBackupWriteTimeoutMs, [ctx] { return ctx->IsCancelled(); });
    if (!stream.is_ok()) {
      spdlog::warn("Maintenance.Snapshot: {}", stream.status().to_string());
      return grpc::Status(stream.status().code() == StatusCode::kNoSpace ? grpc::StatusCode::RESOURCE_EXHAUSTED
                                                                          : grpc::StatusCode::UNAVAILABLE,
                          "etcdserver: " + stream.status().message());
    }
    BackupStream& s = *stream.value();
    spdlog::info("Maintenance.Snapshot: sending a copy at index {} ({} bytes)", s.file().index, s.body_bytes());
    for (;;) {
      auto piece = s.next();
      if (!piece.is_ok()) return grpc::Status(grpc::StatusCode::INTERNAL, piece.status().message());
      pb::SnapshotResponse resp;
      resp.set_remaining_bytes(piece.value().remaining_bytes);
      resp.set_blob(std::move(piece.value().blob));
      if (!writer->Write(resp)) return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
      if (piece.value().last) return grpc::Status::OK;
    }
  }
  grpc::Status MoveLeader(grpc::ServerContext* ctx, const pb::MoveLeaderRequest* req,
                          pb::MoveLeaderResponse* resp) override {
    if (grpc::Status refused = require_root(*ctx, "a leader move"); !refused.ok()) return refused;
    const int timeout_ms = static_cast<int>(std::clamp<int64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(ctx->deadline() - std::chrono::system_clock::now())
            .count(),
        1, kMoveLeaderTimeoutMs));
    auto done = std::make_shared<std::promise<ckv::Status>>();
    std::future<ckv::Status> moved = done->get_future();
    node_.transfer_leadership(req->targetid(), timeout_ms,
                              [done](ckv::Status st) { done->set_value(std::move(st)); });
    if (moved.wait_for(std::chrono::milliseconds(timeout_ms + kCallbackGraceMs)) != std::future_status::ready) {
      return to_grpc(move_leader_error(ckv::Status(StatusCode::kTimeout, "no answer")));
    }
    if (const EtcdError e = move_leader_error(moved.get()); !e.ok()) return to_grpc(e);
    fill_response_header(header_for(node_.status(), true), resp->mutable_header());
    return grpc::Status::OK;
  }

 private:
  // etcd's snapshot and move-leader need root once auth is on (as member changes do).
  grpc::Status require_root(const grpc::ServerContext& ctx, const char* what) const {
    if (auth_ == nullptr) return grpc::Status::OK;
    const ckv::Status s = auth_->require_admin(credentials_from(ctx), what);
    return s.is_ok() ? grpc::Status::OK : to_grpc(EtcdError{grpc_code_of(s), s.message()});
  }

  node::Node& node_;
  AuthService* auth_;  // null: auth not served
  MaintenanceService& ops_;
};

// Every method no service above registers (Lease, Auth, the
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
  Impl(node::Node& node, KvService& kv_service, std::string address,
       const std::optional<tls::TlsMaterial>& tls, AuthService* auth_service, MaintenanceService* ops)
      : kv(make_kv_grpc_service(kv_service)),
        cluster(node, std::move(address), member_channel_credentials(tls), auth_service),
        own_ops(ops == nullptr ? std::make_unique<MaintenanceService>(node, auth_service) : nullptr),
        maintenance(node, auth_service, ops == nullptr ? *own_ops : *ops),
        watch(WatchGrpcService::create(node, auth_service)) {}
  std::unique_ptr<grpc::Service> kv;
  std::unique_ptr<grpc::Service> lease;  // null: none (UNIMPLEMENTED)
  std::unique_ptr<grpc::Service> lock;   // null: none (UNIMPLEMENTED)
  std::unique_ptr<grpc::Service> election;  // null: none (UNIMPLEMENTED)
  std::unique_ptr<grpc::Service> auth;   // null: none (UNIMPLEMENTED)
  ClusterService cluster;
  std::unique_ptr<MaintenanceService> own_ops;  // when start() was given none
  MaintenanceGrpcService maintenance;
  std::unique_ptr<WatchGrpcService> watch;  // etcd/watch_grpc_service.h
  UnimplementedService rest;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<GrpcFrontend> front_end;  // kOwn: reads the port
  uint16_t port = 0;
  std::once_flag stopped;
};

Result<std::unique_ptr<GrpcServer>> GrpcServer::start(node::Node& node, KvService& kv,
                                                      const std::string& listen_address,
                                                      const std::optional<tls::TlsMaterial>& tls,
                                                      int handshake_timeout_ms,
                                                      LeaseService* lease, AuthService* auth,
                                                      LockService* lock, ElectionService* election,
                                                      MaintenanceService* maintenance,
                                                      GrpcFrontEnd front_end) {
  // Debian builds abseil without NDEBUG, so every absl::Mutex that grpc++
  // locks or destroys (several per call) also updates a process-wide
  // deadlock graph under one global lock: 3-4% of a leader's CPU under a
  // gRPC put load (bench/README.md). It is a debugging aid, off in any
  // release build of abseil; turn it off here too.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  auto impl = std::make_unique<Impl>(node, kv, listen_address, tls, auth, maintenance);
  if (lease != nullptr) impl->lease = make_lease_grpc_service(*lease);
  if (lock != nullptr) impl->lock = make_lock_grpc_service(*lock);
  if (election != nullptr) impl->election = make_election_grpc_service(*election);
  if (auth != nullptr) impl->auth = make_auth_grpc_service(*auth);
  grpc::ServerBuilder builder;
  int bound_port = 0;
  const bool own = front_end == GrpcFrontEnd::kOwn;
  // Behind our front end grpc++ listens on no port: only the front end, in process, reaches it.
  set_trust_front_end_identity(own);
  if (!own) builder.AddListeningPort(listen_address, server_credentials(tls), &bound_port);
  builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, handshake_timeout_ms);
  // grpc++ binds with SO_REUSEPORT by default: a second kvnode on the same
  // -grpc-address would then share the port silently instead of failing.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(kMaxGrpcRequestBytes);
  grpc::ResourceQuota quota("ckv-etcd-grpc");
  quota.SetMaxThreads(kMaxGrpcThreads);
  quota.Resize(kGrpcMemoryQuotaBytes);
  builder.SetResourceQuota(quota);
  builder.RegisterService(impl->kv.get());
  if (impl->lease) builder.RegisterService(impl->lease.get());
  if (impl->lock) builder.RegisterService(impl->lock.get());
  if (impl->election) builder.RegisterService(impl->election.get());
  if (impl->auth) builder.RegisterService(impl->auth.get());
  builder.RegisterService(&impl->cluster);
  builder.RegisterService(&impl->maintenance);
  builder.RegisterService(impl->watch->service());
  builder.RegisterCallbackGenericService(&impl->rest);
  install_grpc_metrics(builder);  // grpc_metrics.h
  impl->server = builder.BuildAndStart();
  if (!impl->server || (!own && bound_port == 0)) {
    return Status(StatusCode::kIo,
                  "cannot serve gRPC on " + listen_address + " (address in use or invalid?)");
  }
  impl->port = static_cast<uint16_t>(bound_port);
  if (own) {
    grpc::ChannelArguments args;
    // The front end already held requests to kMaxGrpcRequestBytes; answers are not limited (etcd's are not).
    args.SetMaxReceiveMessageSize(-1);
    args.SetMaxSendMessageSize(-1);
    GrpcFrontendOptions fo;
    fo.listen_address = listen_address;
    fo.tls = tls;
    fo.handshake_timeout_ms = handshake_timeout_ms;
    fo.max_message_bytes = kMaxGrpcRequestBytes;
    auto fe = GrpcFrontend::start(fo, kv, impl->server->InProcessChannel(args));
    if (!fe.is_ok()) {
      impl->server->Shutdown();
      impl->server->Wait();
      return fe.status();
    }
    impl->front_end = std::move(fe.value());
    impl->port = impl->front_end->port();
  }
  return std::unique_ptr<GrpcServer>(new GrpcServer(std::move(impl)));
}

GrpcServer::GrpcServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

GrpcServer::~GrpcServer() { stop(); }

uint16_t GrpcServer::port() const { return impl_->port; }

void GrpcServer::stop() {
  std::call_once(impl_->stopped, [this] {
    if (impl_->front_end) impl_->front_end->stop();  // closes the port, ends the relayed calls
    impl_->watch->shutdown();  // watch streams never end by themselves
    impl_->server->Shutdown(std::chrono::system_clock::now() +
                            std::chrono::milliseconds(kGrpcShutdownGraceMs));
    impl_->server->Wait();
  });
}

}  // namespace ckv::etcd
