// Unit tests for src/tls/peer_cert.h: which certificates name which member host, with and without -peer-cert-allowed-cn.
#include "tls/peer_cert.h"

#include <gtest/gtest.h>

#include "support/test_certs.h"

namespace ckv::tls {
namespace {

using testing::Identity;
using testing::make_identity;

Identity member(const char* cn, const Identity& ca, const std::string& sans) {
  return make_identity(cn, &ca, false, -60, 3600, sans);
}

void expect_refused(const Status& st, const std::string& text) {
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find(text), std::string::npos) << st.message();
}

TEST(PeerCertificate, AnIpSanNamesThatHostOnly) {
  Identity ca = make_identity("ca", nullptr, true);
  Identity n2 = member("n2", ca, "IP:127.0.0.2");
  EXPECT_TRUE(check_peer_certificate(n2.cert.get(), "127.0.0.2", "").is_ok());
  expect_refused(check_peer_certificate(n2.cert.get(), "127.0.0.1", ""),
                 "its certificate (CN=n2, SAN IP:127.0.0.2) does not name host 127.0.0.1");
  // An IP is never matched against DNS names, nor a name against IPs.
  expect_refused(check_peer_certificate(n2.cert.get(), "localhost", ""), "does not name host localhost");
}

TEST(PeerCertificate, ADnsSanNamesThatNameAndWildcardsCoverOneLabel) {
  Identity ca = make_identity("ca", nullptr, true);
  Identity named = member("n1", ca, "DNS:n1.cluster.example");
  EXPECT_TRUE(check_peer_certificate(named.cert.get(), "n1.cluster.example", "").is_ok());
  EXPECT_TRUE(check_peer_certificate(named.cert.get(), "N1.Cluster.Example", "").is_ok());
  expect_refused(check_peer_certificate(named.cert.get(), "n2.cluster.example", ""), "does not name host");
  Identity wild = member("any", ca, "DNS:*.cluster.example");
  EXPECT_TRUE(check_peer_certificate(wild.cert.get(), "n7.cluster.example", "").is_ok());
  expect_refused(check_peer_certificate(wild.cert.get(), "a.b.cluster.example", ""), "does not name host");
}

TEST(PeerCertificate, TheCommonNameIsNeverTakenForAHostName) {
  Identity ca = make_identity("ca", nullptr, true);
  Identity cn_only = member("127.0.0.1", ca, "");
  expect_refused(check_peer_certificate(cn_only.cert.get(), "127.0.0.1", ""), "SAN none");
  Identity host_cn = member("db.example", ca, "");
  expect_refused(check_peer_certificate(host_cn.cert.get(), "db.example", ""), "does not name host db.example");
}

TEST(PeerCertificate, AllowedCnIsRequiredOnTopOfTheHost) {
  Identity ca = make_identity("ca", nullptr, true);
  Identity good = member("raft-peer", ca, "IP:127.0.0.1");
  Identity other = member("client", ca, "IP:127.0.0.1");
  EXPECT_TRUE(check_peer_certificate(good.cert.get(), "127.0.0.1", "raft-peer").is_ok());
  expect_refused(check_peer_certificate(other.cert.get(), "127.0.0.1", "raft-peer"),
                 "does not have the CN -peer-cert-allowed-cn requires (raft-peer)");
  // The CN alone is not enough: the host must match too.
  expect_refused(check_peer_certificate(good.cert.get(), "127.0.0.9", "raft-peer"), "does not name host 127.0.0.9");
}

TEST(PeerCertificate, Ipv6AndMissingCertificates) {
  Identity ca = make_identity("ca", nullptr, true);
  Identity v6 = member("v6", ca, "IP:::1");
  EXPECT_TRUE(check_peer_certificate(v6.cert.get(), "::1", "").is_ok());
  expect_refused(check_peer_certificate(v6.cert.get(), "::2", ""), "SAN IP:::1");
  expect_refused(check_peer_certificate(nullptr, "127.0.0.1", ""), "no peer certificate");
  EXPECT_EQ(describe_certificate(nullptr), "no certificate");
}

}  // namespace
}  // namespace ckv::tls
