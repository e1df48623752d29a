// Strict base64 (RFC 4648): unpadded base64url for JWTs and forwarded caller claims, padded standard for HTTP Basic.
//
// Why not libsodium's decoder: Debian 12's libsodium 1.0.18 decodes every
// byte from 0x80 to 0xff as '_' (signed-char arithmetic), so a token with a
// byte swapped for 0xff still verified (found by JwtTokens.FuzzedTokensAreRefused).
// A credential's text must have exactly one spelling.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace ckv {

enum class Base64 : unsigned char {
  kUrl,       // RFC 4648 §5 ('-', '_'), no padding: JWTs (RFC 7515 §2), our claims
  kStandard,  // RFC 4648 §4 ('+', '/'), padded with '=' to a multiple of 4: HTTP Basic (RFC 7617)
};

// The text of `bin` in that alphabet.
std::string base64_encode(std::string_view bin, Base64 alphabet);

// The bytes `text` stands for, or nullopt unless every character is in the
// alphabet, padding is exactly as the alphabet has it (none for kUrl; for
// kStandard to a multiple of 4, and only at the end), there is no
// whitespace, and the unused trailing bits are zero (so no two texts decode
// alike).
std::optional<std::string> base64_decode(std::string_view text, Base64 alphabet);

}  // namespace ckv
