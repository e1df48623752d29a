// A member's word for a caller it resolved itself, as it forwards the call to the leader: the user, the auth revision, an HMAC under the members' forwarding key.
//
// Why: a follower that forwards a call (gRPC or HTTP) to the leader
// presents its own TLS certificate, so the leader cannot see the client's
// certificate, whose CN is the user (-client-cert-auth). Tokens and
// passwords are forwarded as they came and checked again by the leader;
// a certificate cannot be, so the follower resolves it and vouches for the
// result. The claim binds user and revision with HMAC-SHA256 under
// AuthStore::forward_key() (32 random bytes replicated with auth enable):
// only members can make one, any member can check it, and it stops
// working at the next auth change (the revision), like a JWT.
//
// Encoding (printable ASCII: a gRPC metadata value, an HTTP header):
//   "v1." base64url(user) "." decimal revision "." base64url(mac)
// mac = HMAC-SHA256(key, "consensuskv forwarded caller v1" NUL user NUL revision).
// Pure and thread safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "auth/types.h"

namespace ckv::auth {

// gRPC metadata key and HTTP header that carry a claim.
inline constexpr const char* kForwardedCallerMetadata = "ckv-forwarded-caller";
inline constexpr const char* kForwardedCallerHeader = "Ckv-Forwarded-Caller";
// Longest claim parsed (a kMaxNameBytes user name fits).
inline constexpr size_t kMaxForwardedCallerBytes = size_t{6} * 1024;

// Empty when key is empty (no forwarding key: an Enable from an older build).
std::string forwarded_caller_claim(std::string_view key, const Caller& caller);
// The caller the claim vouches for if key made it; nullopt for anything else
// (malformed, oversized, another key, an empty key).
std::optional<Caller> verify_forwarded_caller(std::string_view key, std::string_view claim);

}  // namespace ckv::auth
