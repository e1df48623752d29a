// etcd's v3election service over grpc++'s callback API (see election_grpc_service.h).
#include "etcd/election_grpc_service.h"

#include <mutex>
#include <utility>

#include <grpcpp/grpcpp.h>

#include "etcd/election_convert.h"
#include "etcd/election_service.h"
#include "etcd/etcdserver/api/v3election/v3electionpb/v3election.grpc.pb.h"
#include "etcd/recipe_grpc.h"

namespace ckv::etcd {

namespace {

// Answers a unary call with a request layer's result (converted by to_pb), or its error as etcd's.
template <typename Answer, typename Response>
std::function<void(Result<Answer>)> answer_to(grpc::ServerUnaryReactor* reactor, Response* resp) {
  return [reactor, resp](Result<Answer> r) {
    if (!r.is_ok()) return reactor->Finish(recipe_error(r.status()));
    to_pb(r.value(), resp);
    reactor->Finish(grpc::Status::OK);
  };
}

// One Observe stream: writes each update of its observation, one at a time.
// The observation's wake and grpc++'s reactions reach the reactor only
// through Shared, under its lock (the wake may come after OnDone).
class ObserveReactor final : public grpc::ServerWriteReactor<electionpb::LeaderResponse> {
 public:
  ObserveReactor(ElectionService& election, const electionpb::LeaderRequest& req, KvCall call)
      : shared_(std::make_shared<Shared>()) {
    shared_->reactor = this;
    auto obs = election.observe(req.name(), std::move(call), [weak = std::weak_ptr<Shared>(shared_)] {
      if (auto s = weak.lock()) s->pump();
    });
    {
      std::lock_guard l(shared_->mu);
      shared_->obs = std::move(obs);
    }
    shared_->pump();
  }

  void OnWriteDone(bool ok) override {
    {
      std::lock_guard l(shared_->mu);
      shared_->writing = false;
      if (!ok) shared_->broken = true;  // the client went: finish (OnCancel comes too)
    }
    shared_->pump();
  }

  void OnCancel() override {
    {
      std::lock_guard l(shared_->mu);
      shared_->broken = true;
    }
    shared_->pump();
  }

  void OnDone() override {
    std::unique_ptr<Observation> obs;
    {
      std::lock_guard l(shared_->mu);
      shared_->reactor = nullptr;
      obs = std::move(shared_->obs);
    }
    if (obs) obs->close();  // outside mu: close waits for a running wake, which takes it
    delete this;
  }

 private:
  struct Shared {
    std::recursive_mutex mu;  // grpc++ may run a reaction inline from StartWrite or Finish
    ObserveReactor* reactor = nullptr;
    std::unique_ptr<Observation> obs;
    electionpb::LeaderResponse out;  // the write in flight
    bool writing = false;
    bool broken = false;  // cancelled, or a write failed
    bool finished = false;

    // The next write, or the end once every update was written.
    void pump() {
      std::lock_guard l(mu);
      if (reactor == nullptr || obs == nullptr || writing || finished) return;
      if (broken) {
        finished = true;
        return reactor->Finish(grpc::Status::CANCELLED);
      }
      if (std::optional<LeaderAnswer> a = obs->next()) {
        out.Clear();
        to_pb(*a, &out);
        writing = true;
        return reactor->StartWrite(&out);
      }
      if (std::optional<Status> end = obs->ended()) {
        finished = true;
        // etcd's Observe ends without error when its watch or read fails.
        reactor->Finish(end->is_ok() ? grpc::Status::OK : recipe_error(*end));
      }
    }
  };
  std::shared_ptr<Shared> shared_;
};

class ElectionGrpcService final : public electionpb::Election::CallbackService {
 public:
  explicit ElectionGrpcService(ElectionService& election) : election_(election) {}

  grpc::ServerUnaryReactor* Campaign(grpc::CallbackServerContext* ctx, const electionpb::CampaignRequest* req,
                                     electionpb::CampaignResponse* resp) override {
    using Reactor = WaitingReactor<electionpb::CampaignResponse>;
    return new Reactor(resp, [&](const Reactor::Finisher& finish) {
      return election_.campaign(req->name(), req->lease(), req->value(), recipe_call_from(ctx),
                                [finish](Result<CampaignAnswer> r) {
                                  finish([&r](electionpb::CampaignResponse* out) {
                                    if (!r.is_ok()) return recipe_error(r.status());
                                    to_pb(r.value(), out);
                                    return grpc::Status::OK;
                                  });
                                });
    });
  }

  grpc::ServerUnaryReactor* Proclaim(grpc::CallbackServerContext* ctx, const electionpb::ProclaimRequest* req,
                                     electionpb::ProclaimResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    election_.proclaim(leader_of(*req), req->value(), recipe_call_from(ctx),
                       answer_to<ElectionHeaderAnswer>(reactor, resp));
    return reactor;
  }

  grpc::ServerUnaryReactor* Leader(grpc::CallbackServerContext* ctx, const electionpb::LeaderRequest* req,
                                   electionpb::LeaderResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    election_.leader(req->name(), recipe_call_from(ctx), answer_to<LeaderAnswer>(reactor, resp));
    return reactor;
  }

  grpc::ServerWriteReactor<electionpb::LeaderResponse>* Observe(grpc::CallbackServerContext* ctx,
                                                                const electionpb::LeaderRequest* req) override {
    return new ObserveReactor(election_, *req, recipe_call_from(ctx));
  }

  grpc::ServerUnaryReactor* Resign(grpc::CallbackServerContext* ctx, const electionpb::ResignRequest* req,
                                   electionpb::ResignResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    election_.resign(leader_of(*req), recipe_call_from(ctx), answer_to<ElectionHeaderAnswer>(reactor, resp));
    return reactor;
  }

 private:
  ElectionService& election_;
};

}  // namespace

std::unique_ptr<grpc::Service> make_election_grpc_service(ElectionService& election) {
  return std::make_unique<ElectionGrpcService>(election);
}

}  // namespace ckv::etcd
