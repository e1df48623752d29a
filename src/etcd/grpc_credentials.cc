// Reading a call's credentials (see grpc_credentials.h).
#include "etcd/grpc_credentials.h"

#include <atomic>

#include <grpc/grpc_security_constants.h>

#include "auth/forwarded_caller.h"

namespace ckv::etcd {

namespace {
std::atomic<bool> g_trust_front_end_identity{false};
}  // namespace

void set_trust_front_end_identity(bool trust) { g_trust_front_end_identity = trust; }

Credentials credentials_from_metadata(const MetadataLookup& find, std::string_view verified_cn) {
  Credentials c;
  std::optional<std::string_view> token = find(kTokenMetadata);
  if (!token) token = find(kAuthorizationMetadata);
  if (token) {
    c.token.assign(*token);
    // The gateway's clients may send "Bearer <token>"; etcd's take it raw.
    if (c.token.starts_with("Bearer ")) c.token.erase(0, 7);
  }
  // Checked by resolve() against the members' forwarding key.
  if (auto f = find(auth::kForwardedCallerMetadata)) c.forwarded_caller.assign(*f);
  // A member forwarding a call presents its own certificate, whose name is
  // not the client's (etcd ignores the gateway's for the same reason): the
  // client's identity is in its claim instead.
  if (!find("ckv-forwarded")) c.cert_cn.assign(verified_cn);
  return c;
}

Credentials credentials_from(const grpc::ServerContextBase& ctx) {
  const auto& md = ctx.client_metadata();
  auto find = [&md](std::string_view name) -> std::optional<std::string_view> {
    auto it = md.find(grpc::string_ref(name.data(), name.size()));
    if (it == md.end()) return std::nullopt;
    return std::string_view(it->second.data(), it->second.size());
  };
  std::string cn;
  if (g_trust_front_end_identity) {
    if (auto v = find(kFrontEndClientCnMetadata)) cn.assign(*v);
  } else if (const std::shared_ptr<const grpc::AuthContext> auth = ctx.auth_context();
             auth && auth->IsPeerAuthenticated()) {
    // Only a certificate the TLS handshake verified (-client-cert-auth) counts.
    for (const grpc::string_ref& v : auth->FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME)) {
      cn.assign(v.data(), v.size());
      break;
    }
  }
  return credentials_from_metadata(find, cn);
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
