// Password hashing (argon2id, libsodium) and the digests that stand for secrets where they must be compared but not kept.
//
// hash_password is slow on purpose (kOpsLimit passes over kMemLimitBytes of
// memory: ~50-100 ms here) and runs on the node that receives the request,
// before anything is proposed: the log and snapshots only ever hold the
// hash (etcd 3.4 hashed with bcrypt inside apply). Callers bound how many
// run at once (etcd/auth_service.h, kMaxConcurrentPasswordChecks).
// Thread safe.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace ckv::auth {

// libsodium's interactive limits: what its authors recommend for logins.
inline constexpr unsigned long long kOpsLimit = 2;
inline constexpr size_t kMemLimitBytes = size_t{64} << 20;
// Longest password accepted (bytes); argon2 takes any length, but a
// megabyte password is an attempt to burn CPU in the hash's first pass.
inline constexpr size_t kMaxPasswordBytes = 4096;

// libsodium's "$argon2id$v=19$m=...,t=...,p=...$salt$hash" string, salted
// at random; nullopt if libsodium fails (out of memory).
std::optional<std::string> hash_password(std::string_view password);
// Whether password matches a hash_password string (constant time in the
// password's content). False for an empty or malformed hash.
bool verify_password(std::string_view hash, std::string_view password);

inline constexpr size_t kDigestBytes = 32;
// SHA-256 of data, kDigestBytes raw bytes: how tokens appear in the log and in tables.
std::string sha256(std::string_view data);
// n random bytes from the OS (libsodium's randombytes, getrandom here).
std::string random_bytes(size_t n);

}  // namespace ckv::auth
