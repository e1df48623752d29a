// Unit tests for src/tls/tls_files.h: which flag combinations and files load_client_tls accepts, and its messages.
#include "tls/tls_files.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "support/test_certs.h"

namespace ckv::tls {
namespace {

namespace fs = std::filesystem;
using testing::make_identity;
using testing::pem_of;

class TlsFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ckv-tls-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    testing::Identity id = make_identity("unit", nullptr, false);
    key_ = std::move(id.key);
    cert_ = std::move(id.cert);
    write("cert.pem", pem_of(cert_.get()));
    write("key.pem", pem_of(key_.get()));
    write("ca.pem", pem_of(cert_.get()));
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& data) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << data;
    return path;
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  TlsFlags flags(bool with_ca = false, bool client_cert_auth = false) const {
    return TlsFlags{path("cert.pem"), path("key.pem"), with_ca ? path("ca.pem") : "",
                    client_cert_auth};
  }

  fs::path dir_;
  KeyPtr key_;
  X509Ptr cert_;
};

template <class Material>
void expect_error(const Result<std::optional<Material>>& r, StatusCode code,
                  const std::string& text) {
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), code) << r.status().to_string();
  EXPECT_NE(r.status().message().find(text), std::string::npos) << r.status().message();
}

TEST_F(TlsFilesTest, NoFlagsMeansNoTls) {
  auto r = load_client_tls(TlsFlags{});
  ASSERT_TRUE(r.is_ok());
  EXPECT_FALSE(r.value().has_value());
}

TEST_F(TlsFilesTest, CertificateAndKeyLoadWithoutClientVerification) {
  auto r = load_client_tls(flags());
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const TlsMaterial& m = *r.value();
  EXPECT_EQ(m.cert_chain_pem, pem_of(cert_.get()));
  EXPECT_EQ(m.private_key_pem, pem_of(key_.get()));
  EXPECT_TRUE(m.trusted_ca_pem.empty());
  EXPECT_FALSE(m.verify_clients);
  EXPECT_EQ(m.leaf_subject, "/CN=unit");
  EXPECT_TRUE(m.warnings.empty());
}

TEST_F(TlsFilesTest, TrustedCaAloneRequiresClientCertificatesAsEtcdDoes) {
  auto r = load_client_tls(flags(true, false));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_TRUE(r.value()->verify_clients);
  EXPECT_EQ(r.value()->trusted_ca_pem, pem_of(cert_.get()));
  r = load_client_tls(flags(true, true));
  ASSERT_TRUE(r.is_ok());
  EXPECT_TRUE(r.value()->verify_clients);
}

TEST_F(TlsFilesTest, FlagCombinationsThatMakeNoSenseAreUsageErrors) {
  TlsFlags f = flags();
  f.key_file.clear();
  expect_error(load_client_tls(f), StatusCode::kInvalid, "-cert-file and -key-file go together");
  f = flags();
  f.cert_file.clear();
  expect_error(load_client_tls(f), StatusCode::kInvalid, "-cert-file and -key-file go together");
  expect_error(load_client_tls(flags(false, true)), StatusCode::kInvalid,
               "-client-cert-auth needs -trusted-ca-file");
  expect_error(load_client_tls(TlsFlags{"", "", path("ca.pem"), false}), StatusCode::kInvalid,
               "-trusted-ca-file needs -cert-file and -key-file");
  expect_error(load_client_tls(TlsFlags{"", "", "", true}), StatusCode::kInvalid,
               "-client-cert-auth needs -cert-file and -key-file");
}

TEST_F(TlsFilesTest, UnreadableAndUnparsableFilesNameTheFlagAndFile) {
  TlsFlags f = flags();
  f.cert_file = path("missing.pem");
  expect_error(load_client_tls(f), StatusCode::kIo,
               "-cert-file " + f.cert_file + ": cannot open it");
  f = flags();
  f.cert_file =
      write("garbage.pem", "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n");
  expect_error(load_client_tls(f), StatusCode::kCorrupt, "no PEM certificate in it");
  f = flags();
  f.key_file = path("cert.pem");  // a certificate is not a key
  expect_error(load_client_tls(f), StatusCode::kCorrupt,
               "-key-file " + f.key_file + ": no unencrypted PEM private key in it");
  f = flags(true);
  f.trusted_ca_file = write("empty.pem", "");
  expect_error(load_client_tls(f), StatusCode::kCorrupt,
               "-trusted-ca-file " + f.trusted_ca_file + ": no PEM certificate in it");
  f = flags();
  f.cert_file = write("huge.pem", std::string(kMaxPemFileBytes + 1, 'A'));
  expect_error(load_client_tls(f), StatusCode::kCorrupt, "not a PEM file");
}

TEST_F(TlsFilesTest, AnEncryptedKeyIsRefusedInsteadOfPrompting) {
  TlsFlags f = flags();
  f.key_file = write("encrypted.pem", pem_of(key_.get(), "secret"));
  expect_error(load_client_tls(f), StatusCode::kCorrupt, "no unencrypted PEM private key");
}

TEST_F(TlsFilesTest, AKeyThatIsNotTheCertificatesIsRefused) {
  testing::Identity other = make_identity("other", nullptr, false);
  TlsFlags f = flags();
  f.key_file = write("other.pem", pem_of(other.key.get()));
  expect_error(load_client_tls(f), StatusCode::kCorrupt,
               "-key-file " + f.key_file + " is not the key of the certificate in -cert-file " +
                   f.cert_file);
}

TEST_F(TlsFilesTest, ExpiredAndNotYetValidCertificatesLoadWithAWarning) {
  // Certificates for the same key as key.pem, valid only in the past or the future.
  auto reissued = [&](long not_before_s, long not_after_s) {
    X509Ptr x(X509_dup(cert_.get()));
    X509_gmtime_adj(X509_getm_notBefore(x.get()), not_before_s);
    X509_gmtime_adj(X509_getm_notAfter(x.get()), not_after_s);
    X509_sign(x.get(), key_.get(), EVP_sha256());
    return pem_of(x.get());
  };
  TlsFlags f = flags();
  f.cert_file = write("expired.pem", reissued(-7200, -3600));
  auto r = load_client_tls(f);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r.value()->warnings.size(), 1u);
  EXPECT_NE(r.value()->warnings[0].find("has expired"), std::string::npos);
  f.cert_file = write("future.pem", reissued(3600, 7200));
  r = load_client_tls(f);
  ASSERT_TRUE(r.is_ok());
  ASSERT_EQ(r.value()->warnings.size(), 1u);
  EXPECT_NE(r.value()->warnings[0].find("is not valid yet"), std::string::npos);
}

// Peer TLS: cert.pem is self-signed, so ca.pem (the same certificate) is its CA.
PeerTlsFlags peer_flags(const std::string& cert, const std::string& key, const std::string& ca) {
  PeerTlsFlags f;
  f.cert_file = cert;
  f.key_file = key;
  f.trusted_ca_file = ca;
  return f;
}

TEST_F(TlsFilesTest, PeerFilesGoTogetherAndOptionsNeedThem) {
  auto none = load_peer_tls(PeerTlsFlags{});
  ASSERT_TRUE(none.is_ok());
  EXPECT_FALSE(none.value().has_value());
  const std::string together = "-peer-cert-file, -peer-key-file and -peer-trusted-ca-file go together";
  expect_error(load_peer_tls(peer_flags(path("cert.pem"), path("key.pem"), "")), StatusCode::kInvalid, together);
  expect_error(load_peer_tls(peer_flags("", "", path("ca.pem"))), StatusCode::kInvalid, together);
  PeerTlsFlags cn_alone;
  cn_alone.allowed_cn = "x";
  expect_error(load_peer_tls(cn_alone), StatusCode::kInvalid, "-peer-cert-allowed-cn needs");
  PeerTlsFlags off = peer_flags(path("cert.pem"), path("key.pem"), path("ca.pem"));
  off.client_cert_auth_given = true;
  off.client_cert_auth = false;
  expect_error(load_peer_tls(off), StatusCode::kInvalid, "-peer-client-cert-auth=false is not supported");
  off.client_cert_auth = true;  // etcd's flag, accepted: it is what we do anyway
  EXPECT_TRUE(load_peer_tls(off).is_ok());
}

TEST_F(TlsFilesTest, PeerMaterialLoadsAndAnExpiredCertificateIsAnError) {
  PeerTlsFlags f = peer_flags(path("cert.pem"), path("key.pem"), path("ca.pem"));
  f.allowed_cn = "unit";
  auto r = load_peer_tls(f);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r.value()->cert_chain_pem, pem_of(cert_.get()));
  EXPECT_EQ(r.value()->allowed_cn, "unit");
  EXPECT_TRUE(r.value()->warnings.empty());
  X509Ptr x(X509_dup(cert_.get()));
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -7200);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), -3600);
  X509_sign(x.get(), key_.get(), EVP_sha256());
  f.cert_file = write("expired.pem", pem_of(x.get()));
  expect_error(load_peer_tls(f), StatusCode::kCorrupt, "has expired: every peer would refuse it");
}

TEST_F(TlsFilesTest, PeerCertificateFromAnotherCaIsAWarning) {
  testing::Identity other = make_identity("other-ca", nullptr, true);
  const std::string other_ca = write("other-ca.pem", pem_of(other.cert.get()));
  auto r = load_peer_tls(peer_flags(path("cert.pem"), path("key.pem"), other_ca));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r.value()->warnings.size(), 1u);
  EXPECT_NE(r.value()->warnings[0].find("is not signed by a CA in -peer-trusted-ca-file"), std::string::npos);
}

}  // namespace
}  // namespace ckv::tls
