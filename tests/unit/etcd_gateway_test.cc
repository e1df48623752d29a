// Unit tests for src/etcd/cluster_view.h and src/http/etcd_gateway.h: etcd's header, member list and status, and their gateway JSON.
#include "http/etcd_gateway.h"

#include <algorithm>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "etcd/cluster_view.h"

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
  st.members = {member("n1", "voter", "n1:2379"), member("n2", "voter", "stale:1"),
                member("n3", "learner")};
  return st;
}

TEST(EtcdClusterView, ClusterIdIsTheSameOnEveryNodeAndChangesWithMembership) {
  node::NodeStatus a = three_members();
  node::NodeStatus b = a;
  std::reverse(b.members.begin(), b.members.end());
  b.id = node::node_id_for("n1");
  EXPECT_EQ(etcd::cluster_id_for(a), etcd::cluster_id_for(b));
  EXPECT_NE(etcd::cluster_id_for(a), 0u);
  b.members.push_back(member("n4", "learner"));
  EXPECT_NE(etcd::cluster_id_for(a), etcd::cluster_id_for(b));
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

TEST(EtcdGatewayJson, StatusUsesProtoNamesStringsAndOmitsZeros) {
  node::NodeStatus st = three_members();
  const std::string body = gateway_status_json(st);
  const json j = json::parse(body);
  EXPECT_EQ(j["header"]["member_id"], std::to_string(node::node_id_for("n2")));
  EXPECT_EQ(j["header"]["cluster_id"], std::to_string(etcd::cluster_id_for(st)));
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
  const json full = json::parse(gateway_status_json(st));
  EXPECT_EQ(full["errors"], json::array({"memberID:" + std::to_string(st.id) + " alarm:NOSPACE "}));
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

}  // namespace
}  // namespace ckv::http
