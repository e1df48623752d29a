// Strict unpadded base64url (RFC 4648 §5) for JWTs and forwarded caller claims.
//
// Why not libsodium's decoder: Debian 12's libsodium 1.0.18 decodes every
// byte from 0x80 to 0xff as '_' (signed-char arithmetic), so a token with a
// byte swapped for 0xff still verified (found by JwtTokens.FuzzedTokensAreRefused).
// A credential's text must have exactly one spelling.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace ckv::auth {

// The unpadded base64url text of `bin`.
std::string base64url_encode(std::string_view bin);

// The bytes `text` stands for, or nullopt unless every character is in
// [A-Za-z0-9_-], there is no padding or whitespace, the length is not 1 mod 4
// and the unused trailing bits are zero (so no two texts decode alike).
std::optional<std::string> base64url_decode(std::string_view text);

}  // namespace ckv::auth
