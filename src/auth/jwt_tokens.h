// etcd 3.4's JWT auth tokens (-auth-token=jwt,...): signed by a member with the private key, verified by any member with the public key, no log entry.
//
// Format (etcd's auth/jwt.go, golang-jwt v3): header {"alg":..,"typ":"JWT"},
// claims {"exp":<unix s>,"revision":<auth revision>,"username":<user>},
// base64url without padding, signed with one configured method: RS256/384/512
// (RSASSA-PKCS1-v1_5), PS256/384/512 (RSASSA-PSS, salt = hash length when
// signing, any salt when verifying, as golang-jwt), ES256/384/512 (ECDSA on
// P-256/P-384/P-521, r||s fixed width), HS256/384/512 (HMAC keyed with the
// priv-key file's bytes, as etcd). A member given only pub-key verifies but
// cannot sign (etcd's verify-only member).
//
// Verification trusts nothing in the token before its signature checks out:
// at most kMaxJwtTokenBytes, exactly three base64url segments (strict:
// no padding, no stray bits), a header whose "alg" equals the configured
// method (so neither "none" nor an HS token signed with the public key as
// secret is ever accepted), then the signature, then the claims: "username"
// a string, "revision" a non-negative integer, "exp" required and not past
// (golang-jwt: valid while now <= exp), "nbf"/"iat" if present not in the
// future. The revision is compared with the auth store's by the caller
// (auth_store.h, check: kErrAuthOldRevision). Every refusal is one reason
// string for the log; the client only ever hears kErrInvalidAuthToken.
//
// Time is the caller's (unix seconds), so tests need no clock; members'
// clocks must agree to within what the ttl tolerates (docs/security.md).
//
// Thread safety: immutable after create(); any thread may sign and verify.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace ckv::auth {

// Longest token verified: a 4096-byte user name and an RSA-8192 signature
// fit; gRPC metadata is limited to 8 KiB by default anyway.
inline constexpr size_t kMaxJwtTokenBytes = size_t{16} * 1024;
// etcd's default JWT ttl (auth/options.go, DefaultTTL).
inline constexpr int64_t kDefaultJwtTtlMs = int64_t{5} * 60 * 1000;
// Largest key file read (a PEM RSA-16384 key is ~12 KiB).
inline constexpr size_t kMaxJwtKeyFileBytes = size_t{64} * 1024;

// etcd's texts (auth/store.go) for option and key problems.
inline constexpr const char* kErrInvalidAuthOpts = "auth: invalid auth options";
inline constexpr const char* kErrInvalidAuthMethod = "auth: invalid auth signature method";
inline constexpr const char* kErrMissingKey = "auth: missing key data";
inline constexpr const char* kErrKeyMismatch = "auth: public and private keys don't match";
inline constexpr const char* kErrVerifyOnly = "auth: token signing attempted with verify-only key";

// -auth-token's value split as etcd's decomposeOpts: "<type>[,k=v]...".
// kInvalid (kErrInvalidAuthOpts) for a pair without exactly one '=' or a
// key given twice. Unknown keys are kept (etcd warns about them).
struct AuthTokenFlag {
  std::string type;  // "simple", "jwt", ...
  std::map<std::string, std::string> options;
};
Result<AuthTokenFlag> parse_auth_token_flag(std::string_view flag);

// etcd's JWT options (auth/options.go): sign-method (required), pub-key and
// priv-key (file paths; at least one, read here, each at most
// kMaxJwtKeyFileBytes), ttl (parsed by the caller: ttl_ms). Unknown keys
// are the caller's to warn about. kInvalid naming the option and file.
class JwtTokens;
Result<std::unique_ptr<JwtTokens>> jwt_tokens_from_options(const std::map<std::string, std::string>& options,
                                                           int64_t ttl_ms);

// Whether etcd (and we) know the sign-method name ("RS256", ...).
bool is_jwt_sign_method(std::string_view name);

struct JwtClaims {
  std::string username;
  uint64_t revision = 0;
  int64_t exp = 0;  // unix seconds
};

class JwtTokens {
 public:
  ~JwtTokens();
  JwtTokens(const JwtTokens&) = delete;
  JwtTokens& operator=(const JwtTokens&) = delete;

  // sign_method as etcd's sign-method option ("RS256", ...); keys as PEM
  // text (HS*: priv_key is the secret itself): a private key (PKCS#1,
  // PKCS#8 or SEC1), a public key (SubjectPublicKeyInfo) or a certificate.
  // kInvalid with etcd's texts: kErrInvalidAuthMethod for an unknown
  // method, kErrMissingKey with no key, kErrKeyMismatch when both keys
  // are given and differ; a key that does not parse or does not suit the
  // method (an EC key for RS256, P-384 for ES256) says which.
  static Result<std::unique_ptr<JwtTokens>> create(std::string_view sign_method,
                                                   std::string_view pub_key_pem,
                                                   std::string_view priv_key_pem, int64_t ttl_ms);

  const std::string& sign_method() const { return alg_; }
  int64_t ttl_ms() const { return ttl_ms_; }
  bool can_sign() const;

  // A token for user at the auth revision, expiring ttl after now_unix_sec
  // (whole seconds, as etcd's). kInvalid kErrVerifyOnly without a private key.
  Result<std::string> sign(std::string_view username, uint64_t revision, int64_t now_unix_sec) const;
  // The token's claims if it is one of ours and valid at now_unix_sec;
  // else kUnauthenticated with the reason (for the log, never the client).
  Result<JwtClaims> verify(std::string_view token, int64_t now_unix_sec) const;

  struct Impl;

 private:
  explicit JwtTokens(std::unique_ptr<Impl> impl, std::string alg, int64_t ttl_ms);
  std::unique_ptr<Impl> impl_;
  const std::string alg_;
  const int64_t ttl_ms_;
};

}  // namespace ckv::auth
