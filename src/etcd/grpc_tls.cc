// grpc++ server and channel credentials from TlsMaterial (see grpc_tls.h).
#include "etcd/grpc_tls.h"

#include <openssl/x509.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

namespace ckv::etcd {

namespace {

// A CA bundle bigger than this is not read (Debian's whole store is ~220 KiB).
constexpr std::streamsize kMaxDefaultRootsBytes = 8 << 20;

// OpenSSL's default CA file (SSL_CERT_FILE, else the built-in path), which
// the HTTP forwarding client verifies against when no -trusted-ca-file is
// given (http/server.cc). grpc++ would otherwise use its own roots and
// ignore SSL_CERT_FILE, so a follower's gRPC forwards would fail where its
// HTTP forwards succeed. Empty when unreadable: grpc's defaults then.
std::string openssl_default_roots_pem() {
  const char* env = std::getenv(X509_get_default_cert_file_env());
  const std::string path = env != nullptr && *env != '\0' ? env : X509_get_default_cert_file();
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::string pem;
  pem.resize(static_cast<size_t>(kMaxDefaultRootsBytes) + 1);
  in.read(pem.data(), kMaxDefaultRootsBytes + 1);
  if (in.gcount() > kMaxDefaultRootsBytes) return {};
  pem.resize(static_cast<size_t>(in.gcount()));
  return pem;
}

}  // namespace

std::shared_ptr<grpc::ServerCredentials> server_credentials(
    const std::optional<tls::TlsMaterial>& tls) {
  if (!tls) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions ssl(
      tls->verify_clients ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                          : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  ssl.pem_root_certs = tls->trusted_ca_pem;
  ssl.pem_key_cert_pairs.push_back({tls->private_key_pem, tls->cert_chain_pem});
  return grpc::SslServerCredentials(ssl);
}

std::shared_ptr<grpc::ChannelCredentials> member_channel_credentials(
    const std::optional<tls::TlsMaterial>& tls) {
  if (!tls) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = tls->trusted_ca_pem.empty() ? openssl_default_roots_pem() : tls->trusted_ca_pem;
  ssl.pem_private_key = tls->private_key_pem;
  ssl.pem_cert_chain = tls->cert_chain_pem;
  return grpc::SslCredentials(ssl);
}

}  // namespace ckv::etcd
