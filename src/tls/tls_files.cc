// Reads and checks the client TLS files with OpenSSL (see tls_files.h).
#include "tls/tls_files.h"

#include <fstream>
#include <memory>
#include <utility>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "tls/openssl_ptr.h"

namespace ckv::tls {

namespace {

// OpenSSL's reason for the last failure on this thread, and the queue cleared.
std::string openssl_error() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "no details from OpenSSL" : out;
}

Result<std::string> read_file(const char* flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return Status(StatusCode::kIo, std::string("-") + flag + " " + path + ": cannot open it");
  std::string data;
  char buf[4096];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    data.append(buf, static_cast<size_t>(in.gcount()));
    if (data.size() > kMaxPemFileBytes) {
      return Status(StatusCode::kCorrupt, std::string("-") + flag + " " + path + ": over " +
                                              std::to_string(kMaxPemFileBytes) +
                                              " bytes, not a PEM file");
    }
  }
  if (in.bad())
    return Status(StatusCode::kIo, std::string("-") + flag + " " + path + ": read failed");
  return data;
}

BioPtr bio_of(const std::string& pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// Every PEM certificate in pem, in order; an empty list when there is none.
std::vector<X509Ptr> parse_certs(const std::string& pem) {
  std::vector<X509Ptr> out;
  BioPtr bio = bio_of(pem);
  if (!bio) return out;
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(x);
  ERR_clear_error();  // the read that ended the loop "failed" at the end of the input
  return out;
}

// A password callback that supplies none: an encrypted key fails to load
// (with a message saying so) instead of prompting on the terminal.
int no_password(char*, int, int, void*) { return 0; }

std::string subject_of(X509* x) {
  char buf[512];
  X509_NAME_oneline(X509_get_subject_name(x), buf, sizeof buf);
  return buf;
}

// A certificate (chain) and its key, read and checked (PEM, unencrypted key,
// key matches the leaf); flag names the option for messages ("cert-file",
// "peer-cert-file"), key_flag the key's.
struct Identity {
  std::string cert_chain_pem;
  std::string private_key_pem;
  std::string leaf_subject;
  bool expired = false;
  bool not_yet_valid = false;
  X509Ptr leaf;
};

Result<Identity> load_identity(const std::string& cert_flag, const std::string& cert_file,
                               const std::string& key_flag, const std::string& key_file) {
  Identity id;
  auto cert = read_file(cert_flag.c_str(), cert_file);
  if (!cert.is_ok()) return cert.status();
  auto key = read_file(key_flag.c_str(), key_file);
  if (!key.is_ok()) return key.status();
  id.cert_chain_pem = std::move(cert).value();
  id.private_key_pem = std::move(key).value();

  std::vector<X509Ptr> chain = parse_certs(id.cert_chain_pem);
  if (chain.empty()) {
    return Status(StatusCode::kCorrupt,
                  "-" + cert_flag + " " + cert_file + ": no PEM certificate in it");
  }
  BioPtr key_bio = bio_of(id.private_key_pem);
  KeyPtr pkey(key_bio ? PEM_read_bio_PrivateKey(key_bio.get(), nullptr, no_password, nullptr)
                      : nullptr);
  if (!pkey) {
    return Status(StatusCode::kCorrupt, "-" + key_flag + " " + key_file +
                                            ": no unencrypted PEM private key in it (" +
                                            openssl_error() + ")");
  }
  if (X509_check_private_key(chain.front().get(), pkey.get()) != 1) {
    ERR_clear_error();
    return Status(StatusCode::kCorrupt, "-" + key_flag + " " + key_file +
                                            " is not the key of the certificate in -" + cert_flag +
                                            " " + cert_file);
  }
  id.leaf_subject = subject_of(chain.front().get());
  id.expired = X509_cmp_current_time(X509_get0_notAfter(chain.front().get())) < 0;
  id.not_yet_valid = X509_cmp_current_time(X509_get0_notBefore(chain.front().get())) > 0;
  id.leaf = std::move(chain.front());
  return id;
}

Result<std::string> load_ca(const std::string& flag, const std::string& path) {
  auto ca = read_file(flag.c_str(), path);
  if (!ca.is_ok()) return ca.status();
  if (parse_certs(ca.value()).empty()) {
    return Status(StatusCode::kCorrupt, "-" + flag + " " + path + ": no PEM certificate in it");
  }
  return ca;
}

// Whether leaf chains to a CA in ca_pem (intermediates from chain_pem), now.
bool verifies_against(X509* leaf, const std::string& chain_pem, const std::string& ca_pem) {
  std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)> store(X509_STORE_new(), X509_STORE_free);
  std::vector<X509Ptr> cas = parse_certs(ca_pem);
  for (const X509Ptr& c : cas) X509_STORE_add_cert(store.get(), c.get());
  std::vector<X509Ptr> chain = parse_certs(chain_pem);
  STACK_OF(X509)* untrusted = sk_X509_new_null();
  for (size_t i = 1; i < chain.size(); ++i) sk_X509_push(untrusted, chain[i].get());
  std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> ctx(X509_STORE_CTX_new(),
                                                                      X509_STORE_CTX_free);
  bool ok = X509_STORE_CTX_init(ctx.get(), store.get(), leaf, untrusted) == 1 &&
            X509_verify_cert(ctx.get()) == 1;
  sk_X509_free(untrusted);
  ERR_clear_error();
  return ok;
}

}  // namespace

Result<std::optional<TlsMaterial>> load_client_tls(const TlsFlags& flags) {
  const bool any = !flags.cert_file.empty() || !flags.key_file.empty() ||
                   !flags.trusted_ca_file.empty() || flags.client_cert_auth;
  if (!any) return std::optional<TlsMaterial>();
  if (flags.cert_file.empty() != flags.key_file.empty()) {
    return Status(StatusCode::kInvalid,
                  "-cert-file and -key-file go together: give both or neither");
  }
  if (flags.cert_file.empty()) {
    return Status(StatusCode::kInvalid,
                  std::string(flags.client_cert_auth ? "-client-cert-auth" : "-trusted-ca-file") +
                      " needs -cert-file and -key-file (the client "
                      "listeners serve TLS only with a certificate)");
  }
  if (flags.client_cert_auth && flags.trusted_ca_file.empty()) {
    return Status(StatusCode::kInvalid,
                  "-client-cert-auth needs -trusted-ca-file (the CA client certificates must be "
                  "signed by)");
  }

  TlsMaterial m;
  m.cert_file = flags.cert_file;
  auto id = load_identity("cert-file", flags.cert_file, "key-file", flags.key_file);
  if (!id.is_ok()) return id.status();
  m.cert_chain_pem = std::move(id->cert_chain_pem);
  m.private_key_pem = std::move(id->private_key_pem);
  m.leaf_subject = id->leaf_subject;
  if (id->expired) {
    m.warnings.push_back("the certificate in -cert-file " + flags.cert_file + " (" +
                         m.leaf_subject + ") has expired: clients will refuse it");
  }
  if (id->not_yet_valid) {
    m.warnings.push_back("the certificate in -cert-file " + flags.cert_file + " (" +
                         m.leaf_subject + ") is not valid yet: clients will refuse it");
  }

  if (!flags.trusted_ca_file.empty()) {
    auto ca = load_ca("trusted-ca-file", flags.trusted_ca_file);
    if (!ca.is_ok()) return ca.status();
    m.trusted_ca_pem = std::move(ca).value();
  }
  // etcd 3.4 requires client certificates whenever a trusted CA is given,
  // whatever -client-cert-auth says (seen against etcd 3.4.23: "tls: client
  // didn't provide a certificate"); a drop-in replacement does the same.
  m.verify_clients = flags.client_cert_auth || !flags.trusted_ca_file.empty();
  return std::optional<TlsMaterial>(std::move(m));
}

Result<std::optional<PeerTlsMaterial>> load_peer_tls(const PeerTlsFlags& flags) {
  const bool files = !flags.cert_file.empty() || !flags.key_file.empty() ||
                     !flags.trusted_ca_file.empty();
  if (!files) {
    if (!flags.allowed_cn.empty() || flags.client_cert_auth_given) {
      return Status(StatusCode::kInvalid,
                    std::string(flags.allowed_cn.empty() ? "-peer-client-cert-auth"
                                                         : "-peer-cert-allowed-cn") +
                        " needs -peer-cert-file, -peer-key-file and -peer-trusted-ca-file");
    }
    return std::optional<PeerTlsMaterial>();
  }
  if (flags.cert_file.empty() || flags.key_file.empty() || flags.trusted_ca_file.empty()) {
    return Status(StatusCode::kInvalid,
                  "-peer-cert-file, -peer-key-file and -peer-trusted-ca-file go together: give "
                  "all three (every raft connection is mutual TLS) or none (plaintext)");
  }
  if (flags.client_cert_auth_given && !flags.client_cert_auth) {
    return Status(StatusCode::kInvalid,
                  "-peer-client-cert-auth=false is not supported: with peer TLS every raft "
                  "connection is mutual, both sides present and verify certificates");
  }
  PeerTlsMaterial m;
  auto id = load_identity("peer-cert-file", flags.cert_file, "peer-key-file", flags.key_file);
  if (!id.is_ok()) return id.status();
  // Unlike the client listeners (whose clients may not check dates), every
  // peer refuses an expired certificate: a node with one could never talk.
  if (id->expired || id->not_yet_valid) {
    return Status(StatusCode::kCorrupt, "-peer-cert-file " + flags.cert_file + ": the certificate (" +
                                            id->leaf_subject + ") " +
                                            (id->expired ? "has expired" : "is not valid yet") +
                                            ": every peer would refuse it");
  }
  auto ca = load_ca("peer-trusted-ca-file", flags.trusted_ca_file);
  if (!ca.is_ok()) return ca.status();
  m.cert_chain_pem = std::move(id->cert_chain_pem);
  m.private_key_pem = std::move(id->private_key_pem);
  m.trusted_ca_pem = std::move(ca).value();
  m.leaf_subject = id->leaf_subject;
  m.allowed_cn = flags.allowed_cn;
  // A warning, not an error: during a CA rotation a member may hold a
  // certificate from a CA that only its peers' bundles list yet.
  if (!verifies_against(id->leaf.get(), m.cert_chain_pem, m.trusted_ca_pem)) {
    m.warnings.push_back("the certificate in -peer-cert-file " + flags.cert_file + " (" +
                         m.leaf_subject + ") is not signed by a CA in -peer-trusted-ca-file " +
                         flags.trusted_ca_file + ": peers that trust only those CAs refuse it");
  }
  return std::optional<PeerTlsMaterial>(std::move(m));
}

}  // namespace ckv::tls
