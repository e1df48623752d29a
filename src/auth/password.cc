// argon2id hashing and SHA-256 digests through libsodium (see password.h).
#include "auth/password.h"

#include <mutex>

#include <sodium.h>

#include "common/check.h"

namespace ckv::auth {

namespace {

void init_sodium() {
  static std::once_flag once;
  std::call_once(once, [] { KV_CHECK(sodium_init() >= 0, "libsodium failed to initialize"); });
}

}  // namespace

std::optional<std::string> hash_password(std::string_view password) {
  init_sodium();
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str_alg(out, password.data(), password.size(), kOpsLimit, kMemLimitBytes,
                            crypto_pwhash_ALG_ARGON2ID13) != 0) {
    return std::nullopt;
  }
  return std::string(out);
}

bool verify_password(std::string_view hash, std::string_view password) {
  init_sodium();
  if (hash.empty() || hash.size() >= crypto_pwhash_STRBYTES) return false;
  const std::string terminated(hash);  // libsodium wants a C string
  return crypto_pwhash_str_verify(terminated.c_str(), password.data(), password.size()) == 0;
}

std::string sha256(std::string_view data) {
  init_sodium();
  std::string out(crypto_hash_sha256_BYTES, '\0');
  crypto_hash_sha256(reinterpret_cast<unsigned char*>(out.data()),
                     reinterpret_cast<const unsigned char*>(data.data()), data.size());
  return out;
}

std::string random_bytes(size_t n) {
  init_sodium();
  std::string out(n, '\0');
  randombytes_buf(out.data(), n);
  return out;
}

}  // namespace ckv::auth
