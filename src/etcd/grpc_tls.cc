// grpc++ server and channel credentials from TlsMaterial (see grpc_tls.h).
#include "etcd/grpc_tls.h"

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

namespace ckv::etcd {

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
  ssl.pem_root_certs = tls->trusted_ca_pem;  // empty: grpc's default roots (the system store)
  ssl.pem_private_key = tls->private_key_pem;
  ssl.pem_cert_chain = tls->cert_chain_pem;
  return grpc::SslCredentials(ssl);
}

}  // namespace ckv::etcd
