// Unit tests for src/auth/base64url.h: RFC 4648 vectors, round trips, and the one-spelling rule.
#include <gtest/gtest.h>

#include <random>

#include "auth/base64url.h"

namespace ckv::auth {
namespace {

TEST(Base64url, EncodesRfc4648Vectors) {
  // RFC 4648 §10, unpadded; the last two use the characters §5 changes.
  EXPECT_EQ(base64url_encode(""), "");
  EXPECT_EQ(base64url_encode("f"), "Zg");
  EXPECT_EQ(base64url_encode("fo"), "Zm8");
  EXPECT_EQ(base64url_encode("foo"), "Zm9v");
  EXPECT_EQ(base64url_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64url_encode("\xfb\xff"), "-_8");
  EXPECT_EQ(base64url_encode("\xff\xff\xfe"), "___-");
}

TEST(Base64url, RoundTripsEveryLength) {
  std::mt19937 rng(7);
  for (size_t n = 0; n < 200; ++n) {
    std::string bin(n, '\0');
    for (char& c : bin) c = static_cast<char>(rng());
    const std::string text = base64url_encode(bin);
    EXPECT_EQ(text.size(), (n * 4 + 2) / 3);
    auto back = base64url_decode(text);
    ASSERT_TRUE(back.has_value()) << text;
    EXPECT_EQ(*back, bin);
  }
}

// Debian 12's libsodium decodes 0x80..0xff as '_': a token with '_' swapped
// for 0xff verified. Every byte outside the alphabet is refused, anywhere.
TEST(Base64url, RefusesEveryByteOutsideTheAlphabet) {
  const std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    if (alphabet.find(c) != std::string_view::npos) continue;
    for (size_t pos = 0; pos < 4; ++pos) {
      std::string text = "AAAA";
      text[pos] = c;
      EXPECT_FALSE(base64url_decode(text).has_value()) << "byte " << b << " at " << pos;
    }
  }
}

TEST(Base64url, RefusesPaddingAndImpossibleLengths) {
  EXPECT_FALSE(base64url_decode("Zg==").has_value());
  EXPECT_FALSE(base64url_decode("Zg=").has_value());
  EXPECT_FALSE(base64url_decode("Z").has_value());
  EXPECT_FALSE(base64url_decode("Zm9vY").has_value());
  EXPECT_FALSE(base64url_decode("Zm9v Zg").has_value());
  EXPECT_EQ(base64url_decode("").value(), "");
}

// "Zh" and "Zg" would both decode to "f" if the unused low bits were ignored.
TEST(Base64url, RefusesNonZeroTrailingBits) {
  EXPECT_EQ(base64url_decode("Zg").value(), "f");
  for (const char* text : {"Zh", "Zi", "Zv", "Zm9", "Zm-"}) {
    EXPECT_FALSE(base64url_decode(text).has_value()) << text;
  }
  EXPECT_EQ(base64url_decode("Zm8").value(), "fo");
}

}  // namespace
}  // namespace ckv::auth
