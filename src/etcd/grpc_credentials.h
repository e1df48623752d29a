// A gRPC call's credentials as etcd reads them: the "token" (or "authorization") metadata, a verified client certificate's common name, and a forwarding member's caller claim.
#pragma once

#include <functional>
#include <optional>
#include <string_view>

#include <grpcpp/grpcpp.h>

#include "etcd/auth_service.h"

namespace ckv::etcd {

// etcd's metadata names (rpctypes.TokenFieldNameGRPC, TokenFieldNameSwagger).
inline constexpr const char* kTokenMetadata = "token";
inline constexpr const char* kAuthorizationMetadata = "authorization";

Credentials credentials_from(const grpc::ServerContextBase& ctx);

// The same from any front end's metadata (find: a header's value, or
// nullopt) and the client certificate's CN its TLS handshake verified ("" for none).
using MetadataLookup = std::function<std::optional<std::string_view>(std::string_view name)>;
Credentials credentials_from_metadata(const MetadataLookup& find, std::string_view verified_cn);

// Metadata with which our own gRPC front end (grpc_frontend.h) hands a
// verified client certificate's CN to the grpc++ services behind it; it
// removes any copy a client sent. Trusted only while
// trust_front_end_identity() is on: when grpc++ listens on no port of its
// own, so that every call reaching it came through the front end.
inline constexpr const char* kFrontEndClientCnMetadata = "ckv-frontend-client-cn";
void set_trust_front_end_identity(bool trust);
// Sets the metadata on a call this node forwards to the leader so that the
// leader resolves the same user: the token as it came (simple tokens are
// known on every member, JWTs verify on every member), or, for a caller
// known by its certificate, auth's claim for it (auth_service.h,
// forward_claim; auth/forwarded_caller.h). auth null: the token only.
void forward_credentials(const Credentials& c, grpc::ClientContext* ctx, AuthService* auth);

}  // namespace ckv::etcd
