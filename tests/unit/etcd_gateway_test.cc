// Unit tests for src/etcd/cluster_view.h, src/etcd/member_ops.h and src/http/etcd_gateway.h: etcd's header, member list, status, member calls and their gateway JSON.
#include "http/etcd_gateway.h"

#include <algorithm>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "etcd/cluster_view.h"
#include "etcd/member_ops.h"

namespace ckv::http {
namespace {

using json = nlohmann::json;

node::MemberStatus member(const std::string& name, const std::string& role,
                          const std::string& grpc = "") {
  node::MemberStatus m;
  m.id = node::node_id_for(name);
  m.info = node::MemberInfo{name, name + ":5000", name + ":8000", "", grpc};
  m.role = role;
  return m;
}

// Three members seen from n2, a follower of n1; n3 is a learner that has not registered a gRPC address.
node::NodeStatus three_members() {
  node::NodeStatus st;
  st.name = "n2";
  st.id = node::node_id_for("n2");
  st.state = "follower";
  st.term = 7;
  st.leader_id = node::node_id_for("n1");
  st.commit_index = 42;
  st.applied_index = 40;
  st.revision = 17;
  st.cluster_id = 0xc1c2c3c4c5c6c7c8ULL;
  st.members = {member("n1", "voter", "n1:2379"), member("n2", "voter", "stale:1"),
                member("n3", "learner")};
  return st;
}

TEST(EtcdClusterView, HeaderCarriesTheNodesClusterId) {
  node::NodeStatus st = three_members();
  st.cluster_id = 0x1234567890abcdefULL;
  EXPECT_EQ(etcd::header_for(st, false).cluster_id, st.cluster_id);
  EXPECT_EQ(etcd::member_list_for(st, "").header.cluster_id, st.cluster_id);
  st.members.push_back(member("n4", "learner"));  // a membership change does not change it
  EXPECT_EQ(etcd::status_for(st).header.cluster_id, st.cluster_id);
}

// etcd's learner is one only MemberPromote promotes; ours that the leader
// promotes by itself shows as a voter. A member that never answered shows
// without a name, which etcdctl prints as "unstarted".
TEST(EtcdClusterView, LearnersAndUnstartedMembersAsEtcdShowsThem) {
  node::NodeStatus st = three_members();
  st.members[2].info.promote_when_caught_up = true;  // n3: joining as a voter
  node::MemberStatus fresh = member("n5", "learner");
  fresh.info.api_address.clear();  // added by address, never heard from
  st.members.push_back(fresh);
  for (const etcd::Member& m : etcd::member_list_for(st, "").members) {
    EXPECT_FALSE(m.is_learner && m.id == node::node_id_for("n3"));
    if (m.id == node::node_id_for("n5")) {
      EXPECT_TRUE(m.is_learner);
      EXPECT_EQ(m.name, "");
    } else {
      EXPECT_NE(m.name, "");
    }
  }
}

TEST(EtcdClusterView, MemberListIsSortedByIdWithUrlsAndLearners) {
  const etcd::MemberList list = etcd::member_list_for(three_members(), "127.0.0.1:2380");
  ASSERT_EQ(list.members.size(), 3u);
  EXPECT_TRUE(
      std::is_sorted(list.members.begin(), list.members.end(),
                     [](const etcd::Member& x, const etcd::Member& y) { return x.id < y.id; }));
  for (const etcd::Member& m : list.members) {
    EXPECT_EQ(m.peer_urls, std::vector<std::string>{"http://" + m.name + ":5000"});
    // Its own URL (n2) is what it serves now, not what the membership recorded.
    const std::vector<std::string> want =
        m.name == "n1"   ? std::vector<std::string>{"http://n1:2379"}
        : m.name == "n2" ? std::vector<std::string>{"http://127.0.0.1:2380"}
                         : std::vector<std::string>{};
    EXPECT_EQ(m.client_urls, want) << m.name;
    EXPECT_EQ(m.is_learner, m.name == "n3");
  }
  EXPECT_EQ(list.header.member_id, node::node_id_for("n2"));
  EXPECT_EQ(list.header.raft_term, 7u);
  EXPECT_EQ(list.header.revision, 0u);  // etcd's Cluster service sets no revision

  // Serving no gRPC now, n2 lists no client URL for itself, whatever was recorded.
  for (const etcd::Member& m : etcd::member_list_for(three_members(), "").members) {
    if (m.name == "n2") {
      EXPECT_TRUE(m.client_urls.empty());
    }
  }
}

// Under client TLS every member's client listeners serve TLS, so clients
// that dial the member list (etcdctl --cluster, clientv3 autosync) must get
// https URLs; raft stays plaintext (peer TLS is issue 11).
TEST(EtcdClusterView, ClientUrlsAreHttpsWhenTheClientListenersServeTls) {
  node::NodeStatus st = three_members();
  st.client_tls = true;
  for (const etcd::Member& m : etcd::member_list_for(st, "127.0.0.1:2380").members) {
    EXPECT_EQ(m.peer_urls, std::vector<std::string>{"http://" + m.name + ":5000"});
    for (const std::string& u : m.client_urls) EXPECT_EQ(u.rfind("https://", 0), 0u) << u;
    if (m.name == "n2") {
      EXPECT_EQ(m.client_urls, std::vector<std::string>{"https://127.0.0.1:2380"});
    }
  }
}

TEST(EtcdGatewayJson, StatusUsesProtoNamesStringsAndOmitsZeros) {
  node::NodeStatus st = three_members();
  const std::string body = gateway_status_json(st);
  const json j = json::parse(body);
  EXPECT_EQ(j["header"]["member_id"], std::to_string(node::node_id_for("n2")));
  EXPECT_EQ(j["header"]["cluster_id"], std::to_string(st.cluster_id));
  EXPECT_EQ(j["header"]["revision"], "17");  // the store's revision, not the applied index
  EXPECT_EQ(j["header"]["raft_term"], "7");
  EXPECT_EQ(j["version"], etcd::kEtcdApiVersion);
  EXPECT_EQ(j["leader"], std::to_string(node::node_id_for("n1")));
  EXPECT_EQ(j["raftIndex"], "42");
  EXPECT_EQ(j["raftTerm"], "7");
  EXPECT_EQ(j["raftAppliedIndex"], "40");
  EXPECT_FALSE(j.contains("dbSize"));  // zero: omitted, as etcd's gateway does
  EXPECT_FALSE(j.contains("errors"));
  EXPECT_FALSE(j.contains("isLearner"));
  // Field order is rpc.proto's, as etcd emits it.
  EXPECT_LT(body.find("\"header\""), body.find("\"version\""));
  EXPECT_LT(body.find("\"cluster_id\""), body.find("\"raft_term\""));

  st.no_space = true;
  st.leader_id = 0;
  st.data_dir_bytes = 67112960;
  st.state_machine_bytes = 4096;
  const json full = json::parse(gateway_status_json(st));
  EXPECT_EQ(full["dbSize"], "67112960");  // the data dir on disk
  EXPECT_EQ(full["dbSizeInUse"], "4096");  // the state in memory
  // etcd 3.4 lists "no leader" first, then the alarms.
  EXPECT_EQ(full["errors"], json::array({"etcdserver: no leader",
                                         "memberID:" + std::to_string(st.id) + " alarm:NOSPACE "}));
  EXPECT_FALSE(full.contains("leader"));
}

TEST(EtcdGatewayJson, MemberListMatchesEtcdsFieldNames) {
  const json j = json::parse(gateway_member_list_json(three_members(), "127.0.0.1:2380"));
  EXPECT_FALSE(j["header"].contains("revision"));
  ASSERT_EQ(j["members"].size(), 3u);
  for (const json& m : j["members"]) {
    ASSERT_TRUE(m["ID"].is_string());
    EXPECT_EQ(std::stoull(m["ID"].get<std::string>()),
              node::node_id_for(m["name"].get<std::string>()));
    EXPECT_TRUE(m["peerURLs"].is_array());
    EXPECT_EQ(m.contains("isLearner"), m["name"] == "n3");
    EXPECT_EQ(m.contains("clientURLs"), m["name"] != "n3");
  }
}

Response call(const std::string& method, const std::string& path, const std::string& body = "") {
  Request req{method, path, body, false, std::nullopt};
  return etcd_gateway(
      req, path, [] { return three_members(); }, "127.0.0.1:2380");
}

TEST(EtcdGateway, RoutesServedUnimplementedUnknownAndBadBodies) {
  EXPECT_EQ(call("POST", "/v3/maintenance/status", "{}").status, 200u);
  EXPECT_EQ(call("POST", "/v3/cluster/member/list").status, 200u);

  const Response unimpl = call("POST", "/v3/kv/range", R"({"key":"Zm9v"})");
  EXPECT_EQ(unimpl.status, 501u);
  EXPECT_EQ(json::parse(unimpl.body)["code"], 12);
  EXPECT_NE(json::parse(unimpl.body)["message"].get<std::string>().find("/v3/kv/range"),
            std::string::npos);

  EXPECT_EQ(call("POST", "/v3/no/such").status, 404u);
  EXPECT_EQ(json::parse(call("POST", "/v3/no/such").body)["code"], 5);
  EXPECT_EQ(call("GET", "/v3/maintenance/status").status, 405u);

  for (const char* bad : {"junk", "[1]", "\"s\"", "{"}) {
    const Response r = call("POST", "/v3/maintenance/status", bad);
    EXPECT_EQ(r.status, 400u) << bad;
    EXPECT_EQ(json::parse(r.body)["code"], 3) << bad;
  }
}

TEST(EtcdGateway, TheDeprecatedV3betaPrefixIsAnAliasAsInEtcd34) {
  EXPECT_EQ(etcd_gateway_path("/v3beta/kv/range"), "/v3/kv/range");
  EXPECT_EQ(etcd_gateway_path("/v3beta/maintenance/status"), "/v3/maintenance/status");
  EXPECT_EQ(etcd_gateway_path("/v3/kv/put"), "/v3/kv/put");
  EXPECT_EQ(etcd_gateway_path("/v3alpha/kv/range"), "/v3alpha/kv/range");  // etcd 3.4: 404
  EXPECT_EQ(etcd_gateway_path("/set"), "/set");
}

// A member is its raft address: one http:// or https:// peer URL (the
// transport's TLS is cluster-wide), host:port, nothing after it. etcd's own
// rejects get etcd's text; ours (several URLs, too long) say why.
TEST(EtcdMemberOps, PeerUrlsMapToOneRaftAddress) {
  etcd::EtcdError err;
  EXPECT_EQ(etcd::raft_address_from_peer_urls({"http://127.0.0.1:5000"}, &err), "127.0.0.1:5000");
  EXPECT_EQ(etcd::raft_address_from_peer_urls({"http://[::1]:5000/"}, &err), "[::1]:5000");
  EXPECT_EQ(etcd::raft_address_from_peer_urls({"http://node-4.example:5000"}, &err), "node-4.example:5000");
  EXPECT_EQ(etcd::raft_address_from_peer_urls({"https://127.0.0.1:5000"}, &err), "127.0.0.1:5000");
  EXPECT_EQ(etcd::raft_address_from_peer_urls({"https://[::1]:5000/"}, &err), "[::1]:5000");
  for (const char* bad : {"foo", "127.0.0.1:5000", "http://127.0.0.1", "http://127.0.0.1:5000/path", "ftp://h:1",
                          "http://h:0", "http://h:99999", "http://:5000", "http://a b:1", "unix://x:1", "https://h", "", "https:/h:1"}) {
    err = {};
    EXPECT_EQ(etcd::raft_address_from_peer_urls({bad}, &err), "") << bad;
    EXPECT_EQ(err.code, etcd::grpc_code::kInvalidArgument) << bad;
    EXPECT_EQ(err.message, etcd::kErrInvalidPeerUrls) << bad;
  }
  err = {};
  EXPECT_EQ(etcd::raft_address_from_peer_urls({}, &err), "");
  EXPECT_EQ(err.message, etcd::kErrInvalidPeerUrls);
  for (const std::vector<std::string>& ours :
       {std::vector<std::string>{"http://a:1", "http://b:2"},
        std::vector<std::string>{"http://" + std::string(node::kMaxMemberFieldBytes, 'h') + ":1"}}) {
    err = {};
    EXPECT_EQ(etcd::raft_address_from_peer_urls(ours, &err), "");
    EXPECT_EQ(err.code, etcd::grpc_code::kInvalidArgument);
    EXPECT_NE(err.message.find("consensuskv: "), std::string::npos) << err.message;
  }
}

TEST(EtcdGatewayMembers, RequestFieldsAsProtobufsJsonMapping) {
  auto parse = [](const std::string& body, etcd::MemberRequest* out, const std::string& method = "POST") {
    Request req{method, "/v3/cluster/member/add", body, false, std::nullopt};
    return parse_gateway_member_request(req, etcd::MemberCall::kAdd, out);
  };
  etcd::MemberRequest r;
  EXPECT_FALSE(parse(R"({"peerURLs":["http://a:1"],"isLearner":true,"unknown":[1]})", &r).has_value());
  EXPECT_EQ(r.peer_urls, std::vector<std::string>{"http://a:1"});
  EXPECT_TRUE(r.is_learner);
  for (const char* id : {R"({"ID":"18446744073709551615"})", R"({"ID":18446744073709551615})"}) {
    r = {};
    EXPECT_FALSE(parse(id, &r).has_value()) << id;
    EXPECT_EQ(r.id, UINT64_MAX) << id;
  }
  r = {};
  EXPECT_FALSE(parse("", &r).has_value());  // every field at its zero value
  EXPECT_EQ(r.id, 0u);
  for (const char* bad : {R"({"ID":"x"})", R"({"ID":-1})", R"({"ID":"18446744073709551616"})", R"({"ID":1.5})",
                          R"({"peerURLs":"http://a:1"})", R"({"peerURLs":[1]})", R"({"isLearner":"yes"})", "junk",
                          "[]"}) {
    r = {};
    const std::optional<Response> refused = parse(bad, &r);
    ASSERT_TRUE(refused.has_value()) << bad;
    EXPECT_EQ(refused->status, 400u) << bad;
    EXPECT_EQ(json::parse(refused->body)["code"], 3) << bad;
  }
  const std::optional<Response> get = parse("", &r, "GET");
  ASSERT_TRUE(get.has_value());
  EXPECT_EQ(get->status, 405u);
}

TEST(EtcdGatewayMembers, RepliesInRpcProtoOrderAndErrorsWithGatewayStatuses) {
  etcd::MemberReply ok = etcd::reply_with_list(three_members(), "");
  ok.member = ok.list.members.front();
  const Response added = gateway_member_reply(ok, etcd::MemberCall::kAdd);
  EXPECT_EQ(added.status, 200u);
  const json j = json::parse(added.body);
  EXPECT_LT(added.body.find("\"header\""), added.body.find("\"member\""));
  EXPECT_LT(added.body.find("\"member\""), added.body.find("\"members\""));
  EXPECT_EQ(j["members"].size(), 3u);
  EXPECT_FALSE(json::parse(gateway_member_reply(ok, etcd::MemberCall::kRemove).body).contains("member"));
  // A follower reads the leader's reply back to answer under its own header.
  ok.member.is_learner = true;
  const auto back = parse_gateway_member_reply(gateway_member_reply(ok, etcd::MemberCall::kAdd).body);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->member.id, ok.member.id);
  EXPECT_EQ(back->member.name, ok.member.name);
  EXPECT_EQ(back->member.peer_urls, ok.member.peer_urls);
  EXPECT_TRUE(back->member.is_learner);
  ASSERT_EQ(back->list.members.size(), ok.list.members.size());
  for (size_t i = 0; i < ok.list.members.size(); ++i) {
    EXPECT_EQ(back->list.members[i].id, ok.list.members[i].id);
    EXPECT_EQ(back->list.members[i].client_urls, ok.list.members[i].client_urls);
  }
  for (const char* bad : {"junk", "[]", R"({"members":{}})", R"({"member":{"ID":"x"}})",
                          R"({"members":[{"peerURLs":[1]}]})"}) {
    EXPECT_FALSE(parse_gateway_member_reply(bad).has_value()) << bad;
  }
  const std::pair<int, unsigned> statuses[] = {{etcd::grpc_code::kNotFound, 404},
                                               {etcd::grpc_code::kFailedPrecondition, 412},
                                               {etcd::grpc_code::kUnknown, 500},
                                               {etcd::grpc_code::kUnavailable, 503},
                                               {etcd::grpc_code::kInvalidArgument, 400}};
  for (const auto& [code, http] : statuses) {
    etcd::MemberReply failed;
    failed.error = etcd::EtcdError{code, "etcdserver: member not found"};
    const Response r = gateway_member_reply(failed, etcd::MemberCall::kPromote);
    EXPECT_EQ(r.status, http) << code;
    EXPECT_EQ(json::parse(r.body), (json{{"error", "etcdserver: member not found"},
                                         {"message", "etcdserver: member not found"},
                                         {"code", code}}));
  }
}

}  // namespace
}  // namespace ckv::http
