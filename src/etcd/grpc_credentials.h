// A gRPC call's credentials as etcd reads them: the "token" (or "authorization") metadata, a verified client certificate's common name, and a forwarding member's caller claim.
#pragma once

#include <grpcpp/grpcpp.h>

#include "etcd/auth_service.h"

namespace ckv::etcd {

// etcd's metadata names (rpctypes.TokenFieldNameGRPC, TokenFieldNameSwagger).
inline constexpr const char* kTokenMetadata = "token";
inline constexpr const char* kAuthorizationMetadata = "authorization";

Credentials credentials_from(const grpc::ServerContextBase& ctx);
// Sets the metadata on a call this node forwards to the leader so that the
// leader resolves the same user: the token as it came (simple tokens are
// known on every member, JWTs verify on every member), or, for a caller
// known by its certificate, auth's claim for it (auth_service.h,
// forward_claim; auth/forwarded_caller.h). auth null: the token only.
void forward_credentials(const Credentials& c, grpc::ClientContext* ctx, AuthService* auth);

}  // namespace ckv::etcd
