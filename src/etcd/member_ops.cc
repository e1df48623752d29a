// etcd's member calls onto Node's membership changes, with etcd 3.4's error texts and codes (see member_ops.h).
#include "etcd/member_ops.h"

#include <memory>
#include <utility>

#include "http/address.h"
#include "node/member_info.h"

namespace ckv::etcd {

namespace {

EtcdError error(int code, std::string message) { return EtcdError{code, std::move(message)}; }

// etcd 3.4's answer for each refusal (as a real etcd gives them: see
// tests/integration/test_etcd_members.py, which compares).
EtcdError etcd_error_for(const Status& s, node::MemberRefusal why) {
  using R = node::MemberRefusal;
  switch (why) {
    case R::kNotFound:
      return error(grpc_code::kNotFound, kErrMemberNotFound);
    case R::kAddressTaken:
      return error(grpc_code::kFailedPrecondition, "etcdserver: Peer URLs already exists");
    case R::kIdTaken:
      return error(grpc_code::kFailedPrecondition, "etcdserver: member ID already exist");
    case R::kTooManyLearners:
      return error(grpc_code::kFailedPrecondition,
                   "etcdserver: too many learner members in cluster");
    // A member added as a voter that has not caught up is what etcd calls
    // an unstarted voter; with one pending, etcd refuses another voter so.
    case R::kPendingLearner:
    // etcd sends this one as codes.Unknown: its error table lacks it.
    case R::kNotEnoughActive:
      return error(grpc_code::kUnknown,
                   "etcdserver: re-configuration failed due to not enough started members");
    case R::kUnhealthy:
      return error(grpc_code::kUnavailable, "etcdserver: unhealthy cluster");
    case R::kNotLearner:
      return error(grpc_code::kFailedPrecondition, "etcdserver: can only promote a learner member");
    case R::kLearnerBehind:
      return error(grpc_code::kFailedPrecondition,
                   "etcdserver: can only promote a learner member which is in sync with leader");
    case R::kNone:
      break;
  }
  switch (s.code()) {
    case StatusCode::kOk:
      return EtcdError{};
    case StatusCode::kNotLeader:
      return error(grpc_code::kUnavailable, kErrLeaderChanged);
    case StatusCode::kTimeout:
      return error(grpc_code::kUnavailable, "etcdserver: request timed out");
    case StatusCode::kNoSpace:
      return error(grpc_code::kResourceExhausted, "etcdserver: mvcc: database space exceeded");
    case StatusCode::kInvalid:
      return error(grpc_code::kInvalidArgument, "consensuskv: " + s.message());
    case StatusCode::kConflict:
      return error(grpc_code::kFailedPrecondition, "consensuskv: " + s.message());
    case StatusCode::kUnavailable:
      return error(grpc_code::kUnavailable, "consensuskv: " + s.message());
    default:
      return error(grpc_code::kUnknown, "consensuskv: " + s.message());
  }
}

const node::MemberStatus* find(const node::NodeStatus& st, uint64_t id) {
  for (const node::MemberStatus& m : st.members) {
    if (m.id == id) return &m;
  }
  return nullptr;
}

// The condition on the applied configuration that shows req is done; id is
// the member's (for MemberAdd, the new member's).
node::Node::ConfigurationCheck shown(const MemberRequest& req, uint64_t id,
                                     std::string raft_address) {
  switch (req.call) {
    case MemberCall::kAdd:
      return [id](const raft::Membership& m) { return m.contains(id); };
    case MemberCall::kRemove:
      return [id](const raft::Membership& m) { return !m.contains(id); };
    case MemberCall::kPromote:
      return [id](const raft::Membership& m) { return m.is_voter(id); };
    case MemberCall::kUpdate:
      return [id, raft_address = std::move(raft_address)](const raft::Membership& m) {
        const raft::Member* member = m.find(id);
        auto info = member ? node::decode_member_info(member->context) : std::nullopt;
        return info && info->raft_address == raft_address;
      };
  }
  return [](const raft::Membership&) { return false; };
}

Member view_of(const MemberList& list, uint64_t id) {
  for (const Member& m : list.members) {
    if (m.id == id) return m;
  }
  return Member{};
}

}  // namespace

std::string raft_address_from_peer_urls(const std::vector<std::string>& urls, EtcdError* err) {
  if (urls.empty()) {
    *err = error(grpc_code::kInvalidArgument, kErrInvalidPeerUrls);
    return {};
  }
  if (urls.size() > 1) {
    *err = error(grpc_code::kInvalidArgument,
                 "consensuskv: a member has exactly one peer URL, http(s)://<its raft address>");
    return {};
  }
  // Either scheme: the raft transport is TLS on every member or on none
  // (-peer-cert-file), so the scheme chooses nothing; etcdctl passes what
  // its operator wrote, and member list shows https:// under peer TLS.
  const std::string& url = urls.front();
  std::string_view rest(url);
  // etcd's own checks: a known scheme, host:port, nothing after it.
  if (rest.starts_with("http://")) {
    rest.remove_prefix(std::string_view("http://").size());
  } else if (rest.starts_with("https://")) {
    rest.remove_prefix(std::string_view("https://").size());
  } else {
    *err = error(grpc_code::kInvalidArgument, kErrInvalidPeerUrls);
    return {};
  }
  // Before any probe or lookup of it: the transport hello carries at most this.
  if (rest.size() > node::kMaxMemberFieldBytes) {
    *err = error(grpc_code::kInvalidArgument, "consensuskv: a peer URL's host:port is at most " +
                                                  std::to_string(node::kMaxMemberFieldBytes) +
                                                  " bytes");
    return {};
  }
  if (rest.ends_with("/"))
    rest.remove_suffix(1);  // "http://h:p/" is h:p, as Go's URL parser has it
  if (!http::parse_host_port(rest)) {
    *err = error(grpc_code::kInvalidArgument, kErrInvalidPeerUrls);
    return {};
  }
  return std::string(rest);
}

MemberReply reply_with_list(const node::NodeStatus& st, const std::string& self_grpc_address) {
  MemberReply r;
  r.list = member_list_for(st, self_grpc_address);
  return r;
}

void change_membership(node::Node& node, const MemberRequest& req,
                       const std::string& self_grpc_address, int timeout_ms,
                       MemberReplyCallback cb) {
  auto fail = [&cb](EtcdError e) {
    MemberReply r;
    r.error = std::move(e);
    cb(std::move(r));
  };
  // Answers once the node reports the change done: the list as this node
  // shows it (status() is published before member waiters are answered).
  auto answer = [&node, self_grpc_address, cb](uint64_t id) {
    return [&node, self_grpc_address, cb, id](Status s, node::MemberRefusal why) {
      if (!s.is_ok()) {
        MemberReply r;
        r.error = etcd_error_for(s, why);
        return cb(std::move(r));
      }
      MemberReply r = reply_with_list(node.status(), self_grpc_address);
      r.member = view_of(r.list, id);
      cb(std::move(r));
    };
  };
  const node::NodeStatus st = node.status();
  EtcdError err;
  switch (req.call) {
    case MemberCall::kAdd: {
      std::string address = raft_address_from_peer_urls(req.peer_urls, &err);
      if (address.empty()) return fail(std::move(err));
      const node::AddMode mode =
          req.is_learner ? node::AddMode::kLearner : node::AddMode::kVoterAsync;
      // Ask whoever listens there who it is (a node started before the add
      // has its own name and incarnation); nobody there: named by its address.
      node.probe_peer(address, kMemberAddProbeTimeoutMs,
                      [&node, address, mode, timeout_ms, answer](Result<node::MemberInfo> who) {
                        node::MemberInfo info;
                        info.raft_address = address;
                        if (who.is_ok() && who->raft_address == address) {
                          info.name = who->name;
                          info.api_address = who->api_address;
                          info.incarnation = who->incarnation;
                        }
                        if (info.name.empty()) info.name = address;
                        const uint64_t id = node::node_id_for(info.name);
                        node.add_member(std::move(info), mode, timeout_ms, answer(id));
                      });
      return;
    }
    case MemberCall::kRemove: {
      const node::MemberStatus* m = find(st, req.id);
      if (m == nullptr) return fail(error(grpc_code::kNotFound, kErrMemberNotFound));
      size_t voters = 0;
      for (const node::MemberStatus& x : st.members) voters += x.role == "voter" ? 1 : 0;
      // The last voter: etcd's strict check refuses it (nobody would be left to commit).
      if (m->role == "voter" && voters == 1)
        return fail(etcd_error_for(Status(), node::MemberRefusal::kUnhealthy));
      node.remove_member(req.id, false, timeout_ms, answer(req.id));
      return;
    }
    case MemberCall::kPromote: {
      const node::MemberStatus* m = find(st, req.id);
      if (m == nullptr) return fail(error(grpc_code::kNotFound, kErrMemberNotFound));
      // A member added as a voter shows as one (member_ops.h): etcd says so.
      if (m->role == "voter" || m->info.promote_when_caught_up) {
        return fail(etcd_error_for(Status(), node::MemberRefusal::kNotLearner));
      }
      node.promote_member(req.id, timeout_ms, answer(req.id));
      return;
    }
    case MemberCall::kUpdate: {
      if (find(st, req.id) == nullptr) return fail(error(grpc_code::kNotFound, kErrMemberNotFound));
      std::string address = raft_address_from_peer_urls(req.peer_urls, &err);
      if (address.empty()) return fail(std::move(err));
      node.update_member_address(req.id, std::move(address), timeout_ms, answer(req.id));
      return;
    }
  }
}

void wait_until_shown(node::Node& node, const MemberRequest& req, MemberReply leader_reply,
                      const std::string& self_grpc_address, int timeout_ms,
                      MemberReplyCallback cb) {
  const uint64_t id = req.call == MemberCall::kAdd ? leader_reply.member.id : req.id;
  std::string address;
  if (req.call == MemberCall::kUpdate) {
    EtcdError ignored;
    address = raft_address_from_peer_urls(req.peer_urls, &ignored);
  }
  auto held = std::make_shared<MemberReply>(std::move(leader_reply));
  node.wait_for_configuration(
      shown(req, id, std::move(address)), timeout_ms,
      [&node, held, self_grpc_address, id, cb](Status s) {
        if (!s.is_ok()) {
          // Done on the leader, not shown here in time: the leader's list
          // stands, under our header (etcdctl compares the member ids of
          // MemberAdd's and MemberList's headers to know they came from one node).
          held->list.header = member_list_for(node.status(), self_grpc_address).header;
          return cb(std::move(*held));
        }
        MemberReply r = reply_with_list(node.status(), self_grpc_address);
        r.member = held->member;
        if (Member mine = view_of(r.list, id); mine.id != 0) r.member = mine;
        cb(std::move(r));
      });
}

}  // namespace ckv::etcd
