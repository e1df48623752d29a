// Forwarded caller claims (see forwarded_caller.h).
#include "auth/forwarded_caller.h"

#include <sodium.h>

#include <charconv>
#include <optional>

#include "auth/auth_store.h"
#include "common/base64.h"

namespace ckv::auth {

namespace {

std::string mac(std::string_view key, std::string_view user, uint64_t revision) {
  std::string msg = "consensuskv forwarded caller v1";
  msg.push_back('\0');
  msg.append(user);
  msg.push_back('\0');
  msg += std::to_string(revision);
  std::string out(crypto_auth_hmacsha256_BYTES, '\0');
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, reinterpret_cast<const unsigned char*>(key.data()), key.size());
  crypto_auth_hmacsha256_update(&st, reinterpret_cast<const unsigned char*>(msg.data()), msg.size());
  crypto_auth_hmacsha256_final(&st, reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

}  // namespace

std::string forwarded_caller_claim(std::string_view key, const Caller& caller) {
  if (key.empty()) return {};
  return "v1." + base64_encode(caller.user, Base64::kUrl) + "." + std::to_string(caller.revision) + "." +
         base64_encode(mac(key, caller.user, caller.revision), Base64::kUrl);
}

std::optional<Caller> verify_forwarded_caller(std::string_view key, std::string_view claim) {
  if (key.empty() || claim.size() > kMaxForwardedCallerBytes || !claim.starts_with("v1.")) return std::nullopt;
  claim.remove_prefix(3);
  const size_t d1 = claim.find('.');
  const size_t d2 = d1 == std::string_view::npos ? d1 : claim.find('.', d1 + 1);
  if (d2 == std::string_view::npos || claim.find('.', d2 + 1) != std::string_view::npos) return std::nullopt;
  std::optional<std::string> user = base64_decode(claim.substr(0, d1), Base64::kUrl);
  const std::string_view rev_text = claim.substr(d1 + 1, d2 - d1 - 1);
  std::optional<std::string> got = base64_decode(claim.substr(d2 + 1), Base64::kUrl);
  uint64_t revision = 0;
  auto [end, ec] = std::from_chars(rev_text.data(), rev_text.data() + rev_text.size(), revision);
  if (!user || !got || ec != std::errc() || end != rev_text.data() + rev_text.size() || rev_text.empty() ||
      user->size() > kMaxNameBytes) {
    return std::nullopt;
  }
  const std::string want = mac(key, *user, revision);
  if (got->size() != want.size() || sodium_memcmp(got->data(), want.data(), want.size()) != 0) return std::nullopt;
  return Caller{std::move(*user), revision};
}

}  // namespace ckv::auth
