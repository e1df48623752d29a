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
  auto cert = read_file("cert-file", flags.cert_file);
  if (!cert.is_ok()) return cert.status();
  auto key = read_file("key-file", flags.key_file);
  if (!key.is_ok()) return key.status();
  m.cert_chain_pem = std::move(cert).value();
  m.private_key_pem = std::move(key).value();

  std::vector<X509Ptr> chain = parse_certs(m.cert_chain_pem);
  if (chain.empty()) {
    return Status(StatusCode::kCorrupt,
                  "-cert-file " + flags.cert_file + ": no PEM certificate in it");
  }
  BioPtr key_bio = bio_of(m.private_key_pem);
  KeyPtr pkey(key_bio ? PEM_read_bio_PrivateKey(key_bio.get(), nullptr, no_password, nullptr)
                      : nullptr);
  if (!pkey) {
    return Status(StatusCode::kCorrupt, "-key-file " + flags.key_file +
                                            ": no unencrypted PEM private key in it (" +
                                            openssl_error() + ")");
  }
  if (X509_check_private_key(chain.front().get(), pkey.get()) != 1) {
    ERR_clear_error();
    return Status(StatusCode::kCorrupt, "-key-file " + flags.key_file +
                                            " is not the key of the certificate in -cert-file " +
                                            flags.cert_file);
  }
  m.leaf_subject = subject_of(chain.front().get());
  if (X509_cmp_current_time(X509_get0_notAfter(chain.front().get())) < 0) {
    m.warnings.push_back("the certificate in -cert-file " + flags.cert_file + " (" +
                         m.leaf_subject + ") has expired: clients will refuse it");
  }
  if (X509_cmp_current_time(X509_get0_notBefore(chain.front().get())) > 0) {
    m.warnings.push_back("the certificate in -cert-file " + flags.cert_file + " (" +
                         m.leaf_subject + ") is not valid yet: clients will refuse it");
  }

  if (!flags.trusted_ca_file.empty()) {
    auto ca = read_file("trusted-ca-file", flags.trusted_ca_file);
    if (!ca.is_ok()) return ca.status();
    m.trusted_ca_pem = std::move(ca).value();
    if (parse_certs(m.trusted_ca_pem).empty()) {
      return Status(StatusCode::kCorrupt,
                    "-trusted-ca-file " + flags.trusted_ca_file + ": no PEM certificate in it");
    }
  }
  // etcd 3.4 requires client certificates whenever a trusted CA is given,
  // whatever -client-cert-auth says (seen against etcd 3.4.23: "tls: client
  // didn't provide a certificate"); a drop-in replacement does the same.
  m.verify_clients = flags.client_cert_auth || !flags.trusted_ca_file.empty();
  return std::optional<TlsMaterial>(std::move(m));
}

}  // namespace ckv::tls
