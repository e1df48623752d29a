// Forwarded caller claims (see forwarded_caller.h).
#include "auth/forwarded_caller.h"

#include <sodium.h>

#include <charconv>
#include <optional>

#include "auth/auth_store.h"

namespace ckv::auth {

namespace {

constexpr int kVariant = sodium_base64_VARIANT_URLSAFE_NO_PADDING;

std::string b64(std::string_view bin) {
  std::string out(sodium_base64_ENCODED_LEN(bin.size(), kVariant), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bin.data()), bin.size(),
                    kVariant);
  out.pop_back();  // the NUL
  return out;
}

std::optional<std::string> unb64(std::string_view text) {
  std::string out(text.size() * 3 / 4 + 3, '\0');
  size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(), text.size(),
                        nullptr, &len, &end, kVariant) != 0 ||
      end != text.data() + text.size()) {
    return std::nullopt;
  }
  out.resize(len);
  return out;
}

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
  return "v1." + b64(caller.user) + "." + std::to_string(caller.revision) + "." +
         b64(mac(key, caller.user, caller.revision));
}

std::optional<Caller> verify_forwarded_caller(std::string_view key, std::string_view claim) {
  if (key.empty() || claim.size() > kMaxForwardedCallerBytes || !claim.starts_with("v1.")) return std::nullopt;
  claim.remove_prefix(3);
  const size_t d1 = claim.find('.');
  const size_t d2 = d1 == std::string_view::npos ? d1 : claim.find('.', d1 + 1);
  if (d2 == std::string_view::npos || claim.find('.', d2 + 1) != std::string_view::npos) return std::nullopt;
  std::optional<std::string> user = unb64(claim.substr(0, d1));
  const std::string_view rev_text = claim.substr(d1 + 1, d2 - d1 - 1);
  std::optional<std::string> got = unb64(claim.substr(d2 + 1));
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
