// Reading a call's credentials (see grpc_credentials.h).
#include "etcd/grpc_credentials.h"

#include <grpc/grpc_security_constants.h>

namespace ckv::etcd {

Credentials credentials_from(const grpc::ServerContextBase& ctx) {
  Credentials c;
  const auto& md = ctx.client_metadata();
  auto it = md.find(kTokenMetadata);
  if (it == md.end()) it = md.find(kAuthorizationMetadata);
  if (it != md.end()) {
    c.token.assign(it->second.data(), it->second.size());
    // The gateway's clients may send "Bearer <token>"; etcd's take it raw.
    if (c.token.starts_with("Bearer ")) c.token.erase(0, 7);
  }
  // A member forwarding a call presents its own certificate, whose name is
  // not the client's (etcd ignores the gateway's for the same reason).
  const bool forwarded = md.find("ckv-forwarded") != md.end();
  const std::shared_ptr<const grpc::AuthContext> auth = ctx.auth_context();
  if (!forwarded && auth && auth->IsPeerAuthenticated()) {
    // Only a certificate the TLS handshake verified (-client-cert-auth) counts.
    for (const grpc::string_ref& cn : auth->FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME)) {
      c.cert_cn.assign(cn.data(), cn.size());
      break;
    }
  }
  return c;
}

void forward_credentials(const Credentials& c, grpc::ClientContext* ctx) {
  if (!c.token.empty()) ctx->AddMetadata(kTokenMetadata, c.token);
}

}  // namespace ckv::etcd
