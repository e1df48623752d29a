// etcd's simple tokens (see simple_tokens.h).
#include "auth/simple_tokens.h"

#include <algorithm>

#include "auth/password.h"

namespace ckv::auth {

std::string SimpleTokens::generate() {
  static constexpr std::string_view kLetters =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  std::string out;
  // Rejection sampling keeps every letter equally likely (256 % 52 != 0).
  constexpr unsigned kLimit = 256 - 256 % kLetters.size();
  while (out.size() < kSimpleTokenLetters) {
    for (unsigned char b : random_bytes(kSimpleTokenLetters)) {
      if (b < kLimit && out.size() < kSimpleTokenLetters) out.push_back(kLetters[b % kLetters.size()]);
    }
  }
  return out;
}

std::string SimpleTokens::digest(std::string_view token) { return sha256(token); }

void SimpleTokens::add(const std::string& digest, const std::string& user, Clock::time_point now) {
  std::lock_guard lock(mu_);
  if (tokens_.size() >= kMaxSimpleTokens && !tokens_.contains(digest)) make_room(now);
  tokens_[digest] = Entry{user, now + ttl_};
}

void SimpleTokens::make_room(Clock::time_point now) {
  std::erase_if(tokens_, [&](const auto& kv) { return kv.second.expires <= now; });
  if (tokens_.size() < kMaxSimpleTokens) return;
  auto soonest = std::min_element(tokens_.begin(), tokens_.end(), [](const auto& a, const auto& b) {
    return a.second.expires < b.second.expires;
  });
  tokens_.erase(soonest);
}

std::optional<std::string> SimpleTokens::user_of(std::string_view token, Clock::time_point now) {
  const std::string d = digest(token);
  std::lock_guard lock(mu_);
  auto it = tokens_.find(d);
  if (it == tokens_.end()) return std::nullopt;
  if (it->second.expires <= now) {
    tokens_.erase(it);
    return std::nullopt;
  }
  it->second.expires = now + ttl_;  // renewed on use, as etcd's resetSimpleToken
  return it->second.user;
}

void SimpleTokens::invalidate_user(std::string_view user) {
  std::lock_guard lock(mu_);
  std::erase_if(tokens_, [&](const auto& kv) { return kv.second.user == user; });
}

void SimpleTokens::clear() {
  std::lock_guard lock(mu_);
  tokens_.clear();
}

size_t SimpleTokens::size() const {
  std::lock_guard lock(mu_);
  return tokens_.size();
}

}  // namespace ckv::auth
