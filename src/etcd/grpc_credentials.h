// A gRPC call's credentials as etcd reads them: the "token" (or "authorization") metadata and a verified client certificate's common name.
#pragma once

#include <grpcpp/grpcpp.h>

#include "etcd/auth_service.h"

namespace ckv::etcd {

// etcd's metadata names (rpctypes.TokenFieldNameGRPC, TokenFieldNameSwagger).
inline constexpr const char* kTokenMetadata = "token";
inline constexpr const char* kAuthorizationMetadata = "authorization";

Credentials credentials_from(const grpc::ServerContextBase& ctx);
// Sets the token metadata on a call this node forwards to the leader, so the
// leader resolves the same user (simple tokens are known on every member).
void forward_credentials(const Credentials& c, grpc::ClientContext* ctx);

}  // namespace ckv::etcd
