// Unit tests for src/auth/jwt_tokens.h: -auth-token parsing, sign/verify per method, and hostile tokens refused.
#include <gtest/gtest.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <sodium.h>

#include <random>

#include "auth/auth_store.h"
#include "auth/jwt_tokens.h"

namespace ckv::auth {
namespace {

constexpr int64_t kNow = 1'800'000'000;  // unix seconds
constexpr int64_t kTtlMs = 300'000;

struct KeyPair {
  std::string priv;
  std::string pub;
};

std::string bio_text(BIO* b) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(b, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(b);
  return out;
}

KeyPair pem_pair(EVP_PKEY* k) {
  KeyPair p;
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, k, nullptr, nullptr, 0, nullptr, nullptr);
  p.priv = bio_text(b);
  b = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(b, k);
  p.pub = bio_text(b);
  EVP_PKEY_free(k);
  return p;
}

const KeyPair& rsa_keys() {
  static const KeyPair k = pem_pair(EVP_RSA_gen(2048));
  return k;
}
const KeyPair& other_rsa_keys() {
  static const KeyPair k = pem_pair(EVP_RSA_gen(2048));
  return k;
}
const KeyPair& ec_keys(const char* curve) {
  static std::map<std::string, KeyPair> keys;
  auto it = keys.find(curve);
  if (it == keys.end()) it = keys.emplace(curve, pem_pair(EVP_EC_gen(curve))).first;
  return it->second;
}

std::unique_ptr<JwtTokens> make(const std::string& method, const std::string& pub, const std::string& priv,
                                int64_t ttl_ms = kTtlMs) {
  auto t = JwtTokens::create(method, pub, priv, ttl_ms);
  EXPECT_TRUE(t.is_ok()) << method << ": " << t.status().message();
  return t.is_ok() ? std::move(t).value() : nullptr;
}

std::string b64(std::string_view s) {
  std::string out(sodium_base64_ENCODED_LEN(s.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(s.data()), s.size(),
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  out.pop_back();
  return out;
}

std::vector<std::string> split(const std::string& token) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t dot = token.find('.'); dot != std::string::npos; dot = token.find('.', start)) {
    parts.push_back(token.substr(start, dot - start));
    start = dot + 1;
  }
  parts.push_back(token.substr(start));
  return parts;
}

TEST(JwtFlag, ParsesEtcdSyntax) {
  auto f = parse_auth_token_flag("jwt,pub-key=/k.pub,priv-key=/k,sign-method=RS256,ttl=5m");
  ASSERT_TRUE(f.is_ok());
  EXPECT_EQ(f->type, "jwt");
  EXPECT_EQ(f->options.at("pub-key"), "/k.pub");
  EXPECT_EQ(f->options.at("priv-key"), "/k");
  EXPECT_EQ(f->options.at("sign-method"), "RS256");
  EXPECT_EQ(f->options.at("ttl"), "5m");
  auto simple = parse_auth_token_flag("simple");
  ASSERT_TRUE(simple.is_ok());
  EXPECT_EQ(simple->type, "simple");
  EXPECT_TRUE(simple->options.empty());
}

TEST(JwtFlag, RefusesMalformedPairsAndDuplicates) {
  for (const char* f : {"jwt,sign-method", "jwt,a=b=c", "jwt,ttl=5m,ttl=6m", "jwt,"}) {
    auto r = parse_auth_token_flag(f);
    ASSERT_FALSE(r.is_ok()) << f;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalid);
    EXPECT_TRUE(r.status().message().starts_with(kErrInvalidAuthOpts)) << r.status().message();
  }
}

TEST(JwtTokens, SignsAndVerifiesWithEveryMethod) {
  struct Case {
    const char* method;
    KeyPair keys;
  };
  const std::vector<Case> cases = {
      {"RS256", rsa_keys()},           {"RS384", rsa_keys()},           {"RS512", rsa_keys()},
      {"PS256", rsa_keys()},           {"PS384", rsa_keys()},           {"PS512", rsa_keys()},
      {"ES256", ec_keys("P-256")},     {"ES384", ec_keys("P-384")},     {"ES512", ec_keys("P-521")},
      {"HS256", {"a shared secret", ""}}, {"HS384", {"a shared secret", ""}}, {"HS512", {"a shared secret", ""}},
  };
  for (const Case& c : cases) {
    auto t = make(c.method, c.keys.pub, c.keys.priv);
    ASSERT_NE(t, nullptr);
    EXPECT_TRUE(t->can_sign());
    auto token = t->sign("alice", 7, kNow);
    ASSERT_TRUE(token.is_ok()) << c.method << ": " << token.status().message();
    auto claims = t->verify(token.value(), kNow);
    ASSERT_TRUE(claims.is_ok()) << c.method << ": " << claims.status().message();
    EXPECT_EQ(claims->username, "alice");
    EXPECT_EQ(claims->revision, 7u);
    EXPECT_EQ(claims->exp, kNow + kTtlMs / 1000);
    // The header and claims are etcd's (golang-jwt's sorted maps).
    auto parts = split(token.value());
    ASSERT_EQ(parts.size(), 3u);
    EXPECT_EQ(parts[0], b64(std::string("{\"alg\":\"") + c.method + "\",\"typ\":\"JWT\"}"));
    EXPECT_EQ(parts[1], b64("{\"exp\":" + std::to_string(kNow + 300) + ",\"revision\":7,\"username\":\"alice\"}"));
  }
}

TEST(JwtTokens, VerifyOnlyMemberVerifiesButCannotSign) {
  auto signer = make("RS256", rsa_keys().pub, rsa_keys().priv);
  auto verifier = make("RS256", rsa_keys().pub, "");
  ASSERT_NE(signer, nullptr);
  ASSERT_NE(verifier, nullptr);
  EXPECT_FALSE(verifier->can_sign());
  auto refused = verifier->sign("alice", 1, kNow);
  ASSERT_FALSE(refused.is_ok());
  EXPECT_EQ(refused.status().message(), kErrVerifyOnly);
  auto token = signer->sign("alice", 1, kNow);
  ASSERT_TRUE(token.is_ok());
  EXPECT_TRUE(verifier->verify(token.value(), kNow).is_ok());
  // A private key alone verifies with its public half.
  auto priv_only = make("RS256", "", rsa_keys().priv);
  ASSERT_NE(priv_only, nullptr);
  EXPECT_TRUE(priv_only->verify(token.value(), kNow).is_ok());
}

TEST(JwtTokens, RefusesBadKeysWithEtcdTexts) {
  auto none = JwtTokens::create("RS256", "", "", kTtlMs);
  ASSERT_FALSE(none.is_ok());
  EXPECT_TRUE(none.status().message().starts_with(kErrMissingKey));
  auto hs_without = JwtTokens::create("HS256", rsa_keys().pub, "", kTtlMs);
  ASSERT_FALSE(hs_without.is_ok());
  EXPECT_TRUE(hs_without.status().message().starts_with(kErrMissingKey));
  auto method = JwtTokens::create("none", rsa_keys().pub, "", kTtlMs);
  ASSERT_FALSE(method.is_ok());
  EXPECT_TRUE(method.status().message().starts_with(kErrInvalidAuthMethod));
  EXPECT_FALSE(JwtTokens::create("EdDSA", rsa_keys().pub, "", kTtlMs).is_ok());
  auto mismatch = JwtTokens::create("RS256", other_rsa_keys().pub, rsa_keys().priv, kTtlMs);
  ASSERT_FALSE(mismatch.is_ok());
  EXPECT_EQ(mismatch.status().message(), kErrKeyMismatch);
  // A key of the wrong kind, or on the wrong curve, is refused at start.
  EXPECT_FALSE(JwtTokens::create("RS256", ec_keys("P-256").pub, "", kTtlMs).is_ok());
  EXPECT_FALSE(JwtTokens::create("ES256", rsa_keys().pub, "", kTtlMs).is_ok());
  EXPECT_FALSE(JwtTokens::create("ES256", ec_keys("P-384").pub, "", kTtlMs).is_ok());
  EXPECT_FALSE(JwtTokens::create("ES384", "", ec_keys("P-256").priv, kTtlMs).is_ok());
  EXPECT_FALSE(JwtTokens::create("RS256", "not a key", "", kTtlMs).is_ok());
  EXPECT_FALSE(JwtTokens::create("RS256", "", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", kTtlMs)
                   .is_ok());
  EXPECT_FALSE(JwtTokens::create("RS256", rsa_keys().pub, "", 0).is_ok());
}

TEST(JwtTokens, RefusesTamperedPayload) {
  auto t = make("ES256", ec_keys("P-256").pub, ec_keys("P-256").priv);
  ASSERT_NE(t, nullptr);
  auto token = t->sign("alice", 3, kNow);
  ASSERT_TRUE(token.is_ok());
  auto parts = split(token.value());
  const std::string forged_claims =
      b64("{\"exp\":" + std::to_string(kNow + 300) + ",\"revision\":3,\"username\":\"root\"}");
  EXPECT_FALSE(t->verify(parts[0] + "." + forged_claims + "." + parts[2], kNow).is_ok());
  // A signature from another key of the same kind.
  auto other = make("RS256", other_rsa_keys().pub, other_rsa_keys().priv);
  auto mine = make("RS256", rsa_keys().pub, rsa_keys().priv);
  auto foreign = other->sign("alice", 3, kNow);
  ASSERT_TRUE(foreign.is_ok());
  EXPECT_FALSE(mine->verify(foreign.value(), kNow).is_ok());
  // One flipped bit in the signature.
  std::string flipped = token.value();
  flipped.back() = flipped.back() == 'A' ? 'B' : 'A';
  EXPECT_FALSE(t->verify(flipped, kNow).is_ok());
}

TEST(JwtTokens, RefusesAnyOtherAlgorithm) {
  auto rs = make("RS256", rsa_keys().pub, rsa_keys().priv);
  auto ps = make("PS256", rsa_keys().pub, rsa_keys().priv);
  ASSERT_NE(rs, nullptr);
  ASSERT_NE(ps, nullptr);
  // Same key, another method: refused both ways.
  EXPECT_FALSE(ps->verify(rs->sign("alice", 1, kNow).value(), kNow).is_ok());
  EXPECT_FALSE(rs->verify(ps->sign("alice", 1, kNow).value(), kNow).is_ok());
  const std::string claims = b64("{\"exp\":" + std::to_string(kNow + 300) + ",\"revision\":1,\"username\":\"root\"}");
  // "none", with and without a signature.
  const std::string none = b64("{\"alg\":\"none\",\"typ\":\"JWT\"}");
  EXPECT_FALSE(rs->verify(none + "." + claims + ".", kNow).is_ok());
  EXPECT_FALSE(rs->verify(none + "." + claims + "." + b64("x"), kNow).is_ok());
  // HS256 keyed with the (public) RSA key's PEM: the classic confusion.
  auto hs = make("HS256", "", rsa_keys().pub);
  ASSERT_NE(hs, nullptr);
  auto confused = hs->sign("root", 1, kNow);
  ASSERT_TRUE(confused.is_ok());
  EXPECT_FALSE(rs->verify(confused.value(), kNow).is_ok());
  // The header's alg must be a string equal to ours, not merely present.
  const std::string header = b64("{\"alg\":[\"RS256\"],\"typ\":\"JWT\"}");
  EXPECT_FALSE(rs->verify(header + "." + claims + "." + split(rs->sign("root", 1, kNow).value())[2], kNow).is_ok());
}

TEST(JwtTokens, RefusesExpiredTokens) {
  auto t = make("RS256", rsa_keys().pub, rsa_keys().priv, 60'000);
  ASSERT_NE(t, nullptr);
  auto token = t->sign("alice", 1, kNow);
  ASSERT_TRUE(token.is_ok());
  EXPECT_TRUE(t->verify(token.value(), kNow + 60).is_ok());  // golang-jwt: valid while now <= exp
  auto late = t->verify(token.value(), kNow + 61);
  ASSERT_FALSE(late.is_ok());
  EXPECT_EQ(late.status().code(), StatusCode::kUnauthenticated);
}

TEST(JwtTokens, RefusesClaimsThatAreNotEtcds) {
  auto hs = make("HS256", "", "k");
  ASSERT_NE(hs, nullptr);
  // A token with these claims, properly signed by the key.
  auto signed_with = [&](const std::string& claims_json) {
    const std::string body = b64("{\"alg\":\"HS256\",\"typ\":\"JWT\"}") + "." + b64(claims_json);
    // Borrow a real signature over body by signing through a second instance is not possible;
    // HMAC directly with the same key instead.
    unsigned char mac[32];
    unsigned int len = 0;
    HMAC(EVP_sha256(), "k", 1, reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac, &len);
    return body + "." + b64(std::string_view(reinterpret_cast<const char*>(mac), len));
  };
  const std::string exp = std::to_string(kNow + 10);
  EXPECT_TRUE(hs->verify(signed_with("{\"exp\":" + exp + ",\"revision\":2,\"username\":\"a\"}"), kNow).is_ok());
  EXPECT_TRUE(hs->verify(signed_with("{\"exp\":" + exp + ".0,\"revision\":2.0,\"username\":\"a\"}"), kNow).is_ok());
  for (const std::string& bad : std::vector<std::string>{
           "{\"revision\":2,\"username\":\"a\"}",                       // no exp
           "{\"exp\":\"" + exp + "\",\"revision\":2,\"username\":\"a\"}",  // exp not a number
           "{\"exp\":" + exp + ",\"username\":\"a\"}",                   // no revision
           "{\"exp\":" + exp + ",\"revision\":-1,\"username\":\"a\"}",
           "{\"exp\":" + exp + ",\"revision\":1.5,\"username\":\"a\"}",
           "{\"exp\":" + exp + ",\"revision\":2}",                       // no username
           "{\"exp\":" + exp + ",\"revision\":2,\"username\":7}",
           "{\"exp\":" + exp + ",\"revision\":2,\"username\":\"a\",\"nbf\":" + std::to_string(kNow + 5) + "}",
           "{\"exp\":" + exp + ",\"revision\":2,\"username\":\"a\",\"iat\":" + std::to_string(kNow + 5) + "}",
           std::string("[1,2]"),
           std::string("not json"),
       }) {
    EXPECT_FALSE(hs->verify(signed_with(bad), kNow).is_ok()) << bad;
  }
}

TEST(JwtTokens, RefusesGarbage) {
  auto t = make("RS256", rsa_keys().pub, rsa_keys().priv);
  ASSERT_NE(t, nullptr);
  const std::string good = t->sign("alice", 1, kNow).value();
  auto parts = split(good);
  const std::vector<std::string> garbage = {
      "",
      ".",
      "..",
      "a.b",
      "a.b.c.d",
      good + ".",
      parts[0] + "=." + parts[1] + "." + parts[2],   // padding
      parts[0] + "." + parts[1] + "." + parts[2] + "==",
      parts[0] + " ." + parts[1] + "." + parts[2],   // whitespace
      "!!!." + parts[1] + "." + parts[2],
      b64("[]") + "." + parts[1] + "." + parts[2],
      b64("{\"typ\":\"JWT\"}") + "." + parts[1] + "." + parts[2],
      std::string(kMaxJwtTokenBytes + 1, 'a'),
      parts[0] + "." + parts[1] + "." + parts[2].substr(0, parts[2].size() - 1),
  };
  for (const std::string& g : garbage) {
    auto r = t->verify(g, kNow);
    EXPECT_FALSE(r.is_ok()) << g.substr(0, 80);
    if (!r.is_ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated);
    }
  }
}

// Seeded mutations of valid tokens: each must be refused, none may crash.
TEST(JwtTokens, FuzzedTokensAreRefused) {
  auto es = make("ES256", ec_keys("P-256").pub, ec_keys("P-256").priv);
  auto hs = make("HS512", "", "secret");
  ASSERT_NE(es, nullptr);
  ASSERT_NE(hs, nullptr);
  std::mt19937_64 rng(20261201);
  const std::string alphabet =
      std::string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ \xff") + '\0';
  for (const JwtTokens* t : {es.get(), hs.get()}) {
    const std::string good = t->sign("alice", 9, kNow).value();
    for (int i = 0; i < 3000; ++i) {
      std::string m = good;
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits; ++e) {
        const size_t pos = rng() % (m.size() + 1);
        const char c = alphabet[rng() % alphabet.size()];
        switch (rng() % 3) {
          case 0: if (pos < m.size()) m[pos] = c; break;
          case 1: m.insert(m.begin() + static_cast<std::ptrdiff_t>(pos), c); break;
          default: if (pos < m.size()) m.erase(pos, 1); break;
        }
      }
      if (m == good) continue;
      auto r = t->verify(m, kNow);
      // A base64url edit in the last char's unused bits would decode equal;
      // strict decoding refuses it, so nothing but the original verifies.
      EXPECT_FALSE(r.is_ok()) << "seed 20261201, iteration " << i << ": " << m;
    }
  }
}

// Every single-byte substitution, at every position, with every byte: the
// fuzz above found '_' -> 0xff verifying once in ~70 runs (libsodium's
// decoder), so this walks the whole neighbourhood every run.
TEST(JwtTokens, EverySingleByteSubstitutionIsRefused) {
  auto es = make("ES256", ec_keys("P-256").pub, ec_keys("P-256").priv);
  auto hs = make("HS512", "", "secret");
  ASSERT_NE(es, nullptr);
  ASSERT_NE(hs, nullptr);
  for (const JwtTokens* t : {es.get(), hs.get()}) {
    const std::string good = t->sign("alice", 9, kNow).value();
    for (size_t pos = 0; pos < good.size(); ++pos) {
      for (int b = 0; b < 256; ++b) {
        if (static_cast<char>(b) == good[pos]) continue;
        std::string m = good;
        m[pos] = static_cast<char>(b);
        EXPECT_FALSE(t->verify(m, kNow).is_ok()) << "byte " << b << " at " << pos << " of " << good;
      }
    }
  }
}

// The revision claim is the auth revision at issue: a token issued before
// any later auth change is refused with etcd's text (auth_store.h, check).
TEST(JwtTokens, TokenFromAnOlderAuthRevisionIsRefused) {
  AuthStore store;
  AuthRequest add;
  add.op = AuthOp::kUserAdd;
  add.name = "root";
  add.secret = "hash";
  ASSERT_TRUE(store.apply(add).is_ok());
  AuthRequest grant;
  grant.op = AuthOp::kUserGrantRole;
  grant.name = "root";
  grant.role = kRootRole;
  ASSERT_TRUE(store.apply(grant).is_ok());
  AuthRequest enable;
  enable.op = AuthOp::kEnable;
  ASSERT_TRUE(store.apply(enable).is_ok());

  auto t = make("RS256", rsa_keys().pub, rsa_keys().priv);
  ASSERT_NE(t, nullptr);
  auto claims = t->verify(t->sign("root", store.revision(), kNow).value(), kNow);
  ASSERT_TRUE(claims.is_ok());
  const Caller caller{claims->username, claims->revision};
  EXPECT_TRUE(store.check(caller, PermType::kWrite, "k", "").is_ok());
  AuthRequest role;
  role.op = AuthOp::kRoleAdd;
  role.role = "app";
  ASSERT_TRUE(store.apply(role).is_ok());
  Status old = store.check(caller, PermType::kWrite, "k", "");
  EXPECT_EQ(old.message(), kErrAuthOldRevision);
}

}  // namespace
}  // namespace ckv::auth
