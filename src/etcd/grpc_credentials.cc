// Reading a call's credentials (see grpc_credentials.h).
#include "etcd/grpc_credentials.h"

#include <grpc/grpc_security_constants.h>

#include "auth/forwarded_caller.h"

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
  // Checked by resolve() against the members' forwarding key.
  if (auto f = md.find(auth::kForwardedCallerMetadata); f != md.end()) {
    c.forwarded_caller.assign(f->second.data(), f->second.size());
  }
  // A member forwarding a call presents its own certificate, whose name is
  // not the client's (etcd ignores the gateway's for the same reason): the
  // client's identity is in its claim instead.
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

void forward_credentials(const Credentials& c, grpc::ClientContext* ctx, AuthService* auth) {
  if (!c.token.empty()) {
    ctx->AddMetadata(kTokenMetadata, c.token);
    return;
  }
  if (auth == nullptr) return;
  if (std::string claim = auth->forward_claim(c); !claim.empty()) {
    ctx->AddMetadata(auth::kForwardedCallerMetadata, claim);
  }
}

}  // namespace ckv::etcd
