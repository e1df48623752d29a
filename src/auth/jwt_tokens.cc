// JWT signing and verification with OpenSSL's EVP (see jwt_tokens.h).
#include "auth/jwt_tokens.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <array>
#include <cmath>
#include <optional>
#include <fstream>
#include <limits>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/base64.h"

namespace ckv::auth {

namespace {

enum class Family : unsigned char { kRsa, kPss, kEcdsa, kHmac };

struct Method {
  const char* name;
  Family family;
  const EVP_MD* (*md)();
  const char* curve;  // ECDSA: the only curve the method allows (RFC 7518 §3.4)
  size_t ec_bytes;    // ECDSA: bytes of r and of s in the signature
};

constexpr std::array<Method, 12> kMethods = {{
    {"RS256", Family::kRsa, EVP_sha256, nullptr, 0},
    {"RS384", Family::kRsa, EVP_sha384, nullptr, 0},
    {"RS512", Family::kRsa, EVP_sha512, nullptr, 0},
    {"PS256", Family::kPss, EVP_sha256, nullptr, 0},
    {"PS384", Family::kPss, EVP_sha384, nullptr, 0},
    {"PS512", Family::kPss, EVP_sha512, nullptr, 0},
    {"ES256", Family::kEcdsa, EVP_sha256, SN_X9_62_prime256v1, 32},
    {"ES384", Family::kEcdsa, EVP_sha384, SN_secp384r1, 48},
    {"ES512", Family::kEcdsa, EVP_sha512, SN_secp521r1, 66},
    {"HS256", Family::kHmac, EVP_sha256, nullptr, 0},
    {"HS384", Family::kHmac, EVP_sha384, nullptr, 0},
    {"HS512", Family::kHmac, EVP_sha512, nullptr, 0},
}};

const Method* find_method(std::string_view name) {
  for (const Method& m : kMethods) {
    if (name == m.name) return &m;
  }
  return nullptr;
}

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct EcSigFree {
  void operator()(ECDSA_SIG* s) const { ECDSA_SIG_free(s); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};

// Never prompts for a passphrase (OpenSSL's default reads the terminal):
// an encrypted key simply fails to load.
int no_passphrase(char*, int, int, void*) { return -1; }

std::unique_ptr<BIO, BioFree> bio_of(std::string_view pem) {
  if (pem.size() > static_cast<size_t>(std::numeric_limits<int>::max())) return nullptr;
  return std::unique_ptr<BIO, BioFree>(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

Pkey load_private(std::string_view pem) {
  auto bio = bio_of(pem);
  Pkey k(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr) : nullptr);
  ERR_clear_error();
  return k;
}

// A SubjectPublicKeyInfo, or a certificate's key (golang-jwt takes both).
Pkey load_public(std::string_view pem) {
  auto bio = bio_of(pem);
  if (!bio) return nullptr;
  Pkey k(PEM_read_bio_PUBKEY(bio.get(), nullptr, no_passphrase, nullptr));
  if (!k) {
    bio = bio_of(pem);
    std::unique_ptr<X509, X509Free> cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr)
                                             : nullptr);
    if (cert) k.reset(X509_get_pubkey(cert.get()));
  }
  ERR_clear_error();
  return k;
}

// Empty when the key suits the method; else why not.
std::string unsuitable(const Method& m, EVP_PKEY* k) {
  const int id = EVP_PKEY_get_base_id(k);
  if (m.family == Family::kRsa || m.family == Family::kPss) {
    if (id != EVP_PKEY_RSA && !(m.family == Family::kPss && id == EVP_PKEY_RSA_PSS)) {
      return std::string("not an RSA key, which ") + m.name + " needs";
    }
    return {};
  }
  if (id != EVP_PKEY_EC) return std::string("not an EC key, which ") + m.name + " needs";
  std::array<char, 64> group{};
  size_t len = 0;
  if (EVP_PKEY_get_group_name(k, group.data(), group.size(), &len) != 1 ||
      std::string_view(group.data(), len) != m.curve) {
    ERR_clear_error();
    return std::string("an EC key on another curve than ") + m.curve + ", which " + m.name + " needs";
  }
  return {};
}

// An unsigned integer a JSON number stands for exactly, if it does
// (golang-jwt reads numbers as float64; etcd truncates revision to uint64).
std::optional<uint64_t> json_uint(const nlohmann::json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) {
    const int64_t i = v.get<int64_t>();
    if (i < 0) return std::nullopt;
    return static_cast<uint64_t>(i);
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    constexpr double kExact = 9007199254740992.0;  // 2^53
    if (!(d >= 0) || d > kExact || std::floor(d) != d) return std::nullopt;
    return static_cast<uint64_t>(d);
  }
  return std::nullopt;
}

// A JSON number of seconds, as golang-jwt's float64 claims (truncated).
std::optional<int64_t> json_seconds(const nlohmann::json& v) {
  if (v.is_number_integer() && !v.is_number_unsigned()) return v.get<int64_t>();
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    constexpr double kLimit = 9.2e18;
    if (!(d > -kLimit && d < kLimit)) return std::nullopt;
    return static_cast<int64_t>(d);
  }
  return std::nullopt;
}

Status bad(std::string why) { return Status(StatusCode::kUnauthenticated, std::move(why)); }

}  // namespace

struct JwtTokens::Impl {
  const Method* method = nullptr;
  Pkey signing;    // null: verify-only (RS/PS/ES)
  Pkey verifying;  // RS/PS/ES
  std::string hmac_key;

  Result<std::string> sign(std::string_view data) const {
    if (method->family == Family::kHmac) return hmac(data);
    std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
    EVP_PKEY_CTX* pctx = nullptr;
    size_t len = 0;
    bool ok = ctx && EVP_DigestSignInit(ctx.get(), &pctx, method->md(), nullptr, signing.get()) == 1;
    if (ok && method->family == Family::kPss) {
      ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
           EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1;
    }
    const auto* in = reinterpret_cast<const unsigned char*>(data.data());
    ok = ok && EVP_DigestSign(ctx.get(), nullptr, &len, in, data.size()) == 1;
    std::string sig(len, '\0');
    ok = ok && EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, in, data.size()) == 1;
    if (!ok) {
      ERR_clear_error();
      return Status(StatusCode::kIo, "consensuskv: OpenSSL could not sign a JWT");
    }
    sig.resize(len);
    if (method->family != Family::kEcdsa) return sig;
    return ecdsa_der_to_raw(sig);
  }

  std::string hmac(std::string_view data) const {
    std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
    unsigned int len = 0;
    HMAC(method->md(), hmac_key.data(), static_cast<int>(hmac_key.size()),
         reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(), &len);
    return std::string(reinterpret_cast<const char*>(out.data()), len);
  }

  // DER ECDSA-Sig-Value -> r || s, each left-padded to ec_bytes (RFC 7518 §3.4).
  Result<std::string> ecdsa_der_to_raw(const std::string& der) const {
    const auto* p = reinterpret_cast<const unsigned char*>(der.data());
    std::unique_ptr<ECDSA_SIG, EcSigFree> s(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
    if (!s) return Status(StatusCode::kIo, "consensuskv: OpenSSL made a malformed ECDSA signature");
    std::string raw(2 * method->ec_bytes, '\0');
    auto* out = reinterpret_cast<unsigned char*>(raw.data());
    const int n = static_cast<int>(method->ec_bytes);
    if (BN_bn2binpad(ECDSA_SIG_get0_r(s.get()), out, n) != n ||
        BN_bn2binpad(ECDSA_SIG_get0_s(s.get()), out + n, n) != n) {
      return Status(StatusCode::kIo, "consensuskv: OpenSSL made an oversized ECDSA signature");
    }
    return raw;
  }

  bool verify(std::string_view data, const std::string& sig) const {
    if (method->family == Family::kHmac) {
      const std::string want = hmac(data);
      return sig.size() == want.size() && CRYPTO_memcmp(sig.data(), want.data(), want.size()) == 0;
    }
    std::string der;
    if (method->family == Family::kEcdsa) {
      if (sig.size() != 2 * method->ec_bytes) return false;
      std::unique_ptr<ECDSA_SIG, EcSigFree> s(ECDSA_SIG_new());
      const auto* in = reinterpret_cast<const unsigned char*>(sig.data());
      const int n = static_cast<int>(method->ec_bytes);
      BIGNUM* r = BN_bin2bn(in, n, nullptr);
      BIGNUM* sv = BN_bin2bn(in + n, n, nullptr);
      if (!s || r == nullptr || sv == nullptr || ECDSA_SIG_set0(s.get(), r, sv) != 1) {
        BN_free(r);
        BN_free(sv);
        return false;
      }
      unsigned char* buf = nullptr;
      const int len = i2d_ECDSA_SIG(s.get(), &buf);
      if (len <= 0) return false;
      der.assign(reinterpret_cast<const char*>(buf), static_cast<size_t>(len));
      OPENSSL_free(buf);
    }
    const std::string& wire = method->family == Family::kEcdsa ? der : sig;
    std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
    EVP_PKEY_CTX* pctx = nullptr;
    bool ok = ctx && EVP_DigestVerifyInit(ctx.get(), &pctx, method->md(), nullptr, verifying.get()) == 1;
    if (ok && method->family == Family::kPss) {
      // golang-jwt verifies PS* with PSSSaltLengthAuto: any salt length.
      ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
           EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_AUTO) == 1;
    } else if (ok && method->family == Family::kRsa) {
      ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1;
    }
    ok = ok && EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(wire.data()), wire.size(),
                                reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
    ERR_clear_error();
    return ok;
  }
};

bool is_jwt_sign_method(std::string_view name) { return find_method(name) != nullptr; }

Result<AuthTokenFlag> parse_auth_token_flag(std::string_view flag) {
  AuthTokenFlag out;
  size_t start = 0;
  bool first = true;
  while (true) {
    const size_t comma = flag.find(',', start);
    const std::string_view part = flag.substr(start, comma == std::string_view::npos ? flag.npos : comma - start);
    if (first) {
      out.type = std::string(part);
      first = false;
    } else {
      const size_t eq = part.find('=');
      if (eq == std::string_view::npos || part.find('=', eq + 1) != std::string_view::npos) {
        return Status(StatusCode::kInvalid, std::string(kErrInvalidAuthOpts) + ": option '" + std::string(part) +
                                                "' is not key=value");
      }
      auto [it, fresh] = out.options.emplace(std::string(part.substr(0, eq)), std::string(part.substr(eq + 1)));
      if (!fresh) {
        return Status(StatusCode::kInvalid,
                      std::string(kErrInvalidAuthOpts) + ": option '" + it->first + "' given twice");
      }
    }
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

namespace {

Result<std::string> read_key_file(const std::string& option, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status(StatusCode::kInvalid, option + "=" + path + ": cannot be read");
  std::string data(kMaxJwtKeyFileBytes + 1, '\0');
  in.read(data.data(), static_cast<std::streamsize>(data.size()));
  if (in.bad()) return Status(StatusCode::kInvalid, option + "=" + path + ": cannot be read");
  const auto n = static_cast<size_t>(in.gcount());
  if (n > kMaxJwtKeyFileBytes) {
    return Status(StatusCode::kInvalid, option + "=" + path + ": over " + std::to_string(kMaxJwtKeyFileBytes) +
                                            " bytes, not a key");
  }
  data.resize(n);
  return data;
}

}  // namespace

Result<std::unique_ptr<JwtTokens>> jwt_tokens_from_options(const std::map<std::string, std::string>& options,
                                                           int64_t ttl_ms) {
  auto get = [&](const char* key) {
    auto it = options.find(key);
    return it == options.end() ? std::string() : it->second;
  };
  std::string keys[2];
  const char* names[2] = {"pub-key", "priv-key"};
  for (int i = 0; i < 2; ++i) {
    const std::string path = get(names[i]);
    if (path.empty()) continue;
    Result<std::string> data = read_key_file(names[i], path);
    if (!data.is_ok()) return data.status();
    keys[i] = std::move(data).value();
  }
  auto made = JwtTokens::create(get("sign-method"), keys[0], keys[1], ttl_ms);
  if (!made.is_ok()) return made.status();
  return std::move(made).value();
}

JwtTokens::JwtTokens(std::unique_ptr<Impl> impl, std::string alg, int64_t ttl_ms)
    : impl_(std::move(impl)), alg_(std::move(alg)), ttl_ms_(ttl_ms) {}
JwtTokens::~JwtTokens() = default;

bool JwtTokens::can_sign() const {
  return impl_->method->family == Family::kHmac || impl_->signing != nullptr;
}

Result<std::unique_ptr<JwtTokens>> JwtTokens::create(std::string_view sign_method, std::string_view pub_key_pem,
                                                     std::string_view priv_key_pem, int64_t ttl_ms) {
  const Method* m = find_method(sign_method);
  if (m == nullptr) {
    return Status(StatusCode::kInvalid, std::string(kErrInvalidAuthMethod) + " '" + std::string(sign_method) +
                                            "' (RS256/384/512, PS256/384/512, ES256/384/512, HS256/384/512)");
  }
  if (ttl_ms <= 0) return Status(StatusCode::kInvalid, std::string(kErrInvalidAuthOpts) + ": ttl must be positive");
  auto impl = std::make_unique<Impl>();
  impl->method = m;
  if (m->family == Family::kHmac) {
    // etcd keys HS* with the priv-key file's bytes as they are.
    if (priv_key_pem.empty()) return Status(StatusCode::kInvalid, std::string(kErrMissingKey) + ": " + m->name + " needs priv-key");
    impl->hmac_key = std::string(priv_key_pem);
    return std::unique_ptr<JwtTokens>(new JwtTokens(std::move(impl), m->name, ttl_ms));
  }
  if (pub_key_pem.empty() && priv_key_pem.empty()) {
    return Status(StatusCode::kInvalid, std::string(kErrMissingKey) + ": give pub-key, priv-key or both");
  }
  if (!priv_key_pem.empty()) {
    impl->signing = load_private(priv_key_pem);
    if (!impl->signing) {
      return Status(StatusCode::kInvalid, "priv-key is not an unencrypted PEM private key");
    }
    if (std::string why = unsuitable(*m, impl->signing.get()); !why.empty()) {
      return Status(StatusCode::kInvalid, "priv-key is " + why);
    }
  }
  if (!pub_key_pem.empty()) {
    impl->verifying = load_public(pub_key_pem);
    if (!impl->verifying) {
      return Status(StatusCode::kInvalid, "pub-key is not a PEM public key or certificate");
    }
    if (std::string why = unsuitable(*m, impl->verifying.get()); !why.empty()) {
      return Status(StatusCode::kInvalid, "pub-key is " + why);
    }
    if (impl->signing && EVP_PKEY_eq(impl->signing.get(), impl->verifying.get()) != 1) {
      ERR_clear_error();
      return Status(StatusCode::kInvalid, kErrKeyMismatch);
    }
  } else {
    // Verify with the private key's public half (etcd does the same).
    EVP_PKEY_up_ref(impl->signing.get());
    impl->verifying.reset(impl->signing.get());
  }
  return std::unique_ptr<JwtTokens>(new JwtTokens(std::move(impl), m->name, ttl_ms));
}

Result<std::string> JwtTokens::sign(std::string_view username, uint64_t revision, int64_t now_unix_sec) const {
  if (!can_sign()) return Status(StatusCode::kInvalid, kErrVerifyOnly);
  // Keys sorted, as golang-jwt marshals its maps; invalid UTF-8 in a name
  // becomes U+FFFD, as Go's encoding/json does.
  const nlohmann::json header = {{"alg", alg_}, {"typ", "JWT"}};
  const nlohmann::json claims = {{"exp", now_unix_sec + ttl_ms_ / 1000},
                                 {"revision", revision},
                                 {"username", std::string(username)}};
  constexpr auto kReplace = nlohmann::json::error_handler_t::replace;
  std::string token = base64_encode(header.dump(-1, ' ', false, kReplace), Base64::kUrl) + "." +
                      base64_encode(claims.dump(-1, ' ', false, kReplace), Base64::kUrl);
  Result<std::string> sig = impl_->sign(token);
  if (!sig.is_ok()) return sig.status();
  token += ".";
  token += base64_encode(sig.value(), Base64::kUrl);
  return token;
}

Result<JwtClaims> JwtTokens::verify(std::string_view token, int64_t now_unix_sec) const {
  if (token.size() > kMaxJwtTokenBytes) return bad("a JWT over " + std::to_string(kMaxJwtTokenBytes) + " bytes");
  const size_t dot1 = token.find('.');
  const size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return bad("not a JWT (three dot-separated parts)");
  }
  const std::string_view signed_part = token.substr(0, dot2);
  std::optional<std::string> header_json = base64_decode(token.substr(0, dot1), Base64::kUrl);
  std::optional<std::string> claims_json = base64_decode(token.substr(dot1 + 1, dot2 - dot1 - 1), Base64::kUrl);
  std::optional<std::string> sig = base64_decode(token.substr(dot2 + 1), Base64::kUrl);
  if (!header_json || !claims_json || !sig) return bad("a JWT part is not base64url");
  const nlohmann::json header = nlohmann::json::parse(*header_json, nullptr, false);
  if (!header.is_object()) return bad("a JWT header that is not a JSON object");
  auto alg = header.find("alg");
  if (alg == header.end() || !alg->is_string()) return bad("a JWT header without alg");
  // Only the configured method: never "none", never HS with the public key as the secret.
  if (alg->get_ref<const std::string&>() != alg_) {
    return bad("a JWT signed with " + alg->dump(-1, ' ', true, nlohmann::json::error_handler_t::replace) +
               ", not " + alg_);
  }
  if (!impl_->verify(signed_part, *sig)) return bad("a JWT whose signature does not verify");
  // Signed by us (or by whoever holds the key): the claims can be read.
  const nlohmann::json claims = nlohmann::json::parse(*claims_json, nullptr, false);
  if (!claims.is_object()) return bad("JWT claims that are not a JSON object");
  JwtClaims out;
  auto user = claims.find("username");
  if (user == claims.end() || !user->is_string()) return bad("a JWT without a username");
  out.username = user->get<std::string>();
  auto rev = claims.find("revision");
  std::optional<uint64_t> revision = rev == claims.end() ? std::nullopt : json_uint(*rev);
  if (!revision) return bad("a JWT without a revision");
  out.revision = *revision;
  auto exp = claims.find("exp");
  std::optional<int64_t> exp_sec = exp == claims.end() ? std::nullopt : json_seconds(*exp);
  if (!exp_sec) return bad("a JWT without an expiry");
  out.exp = *exp_sec;
  if (now_unix_sec > out.exp) return bad("an expired JWT");
  for (const char* not_before : {"nbf", "iat"}) {
    auto it = claims.find(not_before);
    if (it == claims.end()) continue;
    std::optional<int64_t> t = json_seconds(*it);
    if (!t || now_unix_sec < *t) return bad(std::string("a JWT whose ") + not_before + " is in the future");
  }
  return out;
}

}  // namespace ckv::auth
