// etcd's "simple" auth tokens: random strings each member maps to a user until they go unused for the TTL.
//
// Issue and spread (docs/security.md, "Client authentication"): the node
// that checks a password draws a token (generate()) and proposes an
// Authenticate command carrying only its SHA-256 digest; every member
// applies it and records digest -> user here (add), so the token works on
// every member, as etcd 3.4's do (it replicates InternalAuthenticateRequest),
// and the log and snapshots never hold a token. Tokens live in memory only:
// a restarted member knows those whose Authenticate it replays from the log.
//
// Expiry: each member forgets a token ttl after its last use there
// (user_of renews it), etcd's simpleTokenTTLKeeper; -auth-token-ttl sets it.
// Deleting a user or changing its password drops its tokens
// (invalidate_user); disabling auth drops all (clear).
//
// Thread safety: all methods may be called from any thread (one mutex).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace ckv::auth {

// Tokens a member keeps at once; adding one more drops expired ones, then
// the one closest to expiring (a client flooding Authenticate cannot grow
// memory without bound).
inline constexpr size_t kMaxSimpleTokens = 65536;
// etcd's default --auth-token-ttl.
inline constexpr int64_t kDefaultTokenTtlSec = 300;
// Letters in a token (from [a-zA-Z], as etcd's): about 182 bits.
inline constexpr size_t kSimpleTokenLetters = 32;

class SimpleTokens {
 public:
  using Clock = std::chrono::steady_clock;
  explicit SimpleTokens(int64_t ttl_ms) : ttl_(std::chrono::milliseconds(ttl_ms)) {}

  // A fresh random token.
  static std::string generate();
  // The digest Authenticate commands carry (password.h's sha256).
  static std::string digest(std::string_view token);

  void add(const std::string& digest, const std::string& user, Clock::time_point now);
  // The token's user, its TTL restarted; nullopt if unknown or expired.
  std::optional<std::string> user_of(std::string_view token, Clock::time_point now);
  void invalidate_user(std::string_view user);
  void clear();
  size_t size() const;

 private:
  struct Entry {
    std::string user;
    Clock::time_point expires;
  };
  void make_room(Clock::time_point now);  // requires mu_

  const Clock::duration ttl_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> tokens_;  // by digest
};

}  // namespace ckv::auth
