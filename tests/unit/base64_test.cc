// Unit tests for src/common/base64.h: RFC 4648 vectors, round trips, and the one-spelling rule, both alphabets.
#include <gtest/gtest.h>

#include <random>

#include "common/base64.h"

namespace ckv {
namespace {

TEST(Base64, EncodesRfc4648Vectors) {
  // RFC 4648 §10; unpadded for base64url, whose alphabet differs in the last two characters (§5).
  const std::pair<const char*, const char*> vectors[] = {{"", ""},          {"f", "Zg=="},       {"fo", "Zm8="},
                                                         {"foo", "Zm9v"},   {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="},
                                                         {"foobar", "Zm9vYmFy"}};
  for (const auto& [bin, text] : vectors) {
    EXPECT_EQ(base64_encode(bin, Base64::kStandard), text);
    std::string url = text;
    while (!url.empty() && url.back() == '=') url.pop_back();
    EXPECT_EQ(base64_encode(bin, Base64::kUrl), url);
  }
  EXPECT_EQ(base64_encode("\xfb\xff", Base64::kUrl), "-_8");
  EXPECT_EQ(base64_encode("\xfb\xff", Base64::kStandard), "+/8=");
  EXPECT_EQ(base64_encode("\xff\xff\xfe", Base64::kUrl), "___-");
}

TEST(Base64, RoundTripsEveryLength) {
  std::mt19937 rng(7);
  for (size_t n = 0; n < 200; ++n) {
    std::string bin(n, '\0');
    for (char& c : bin) c = static_cast<char>(rng());
    for (Base64 alphabet : {Base64::kUrl, Base64::kStandard}) {
      const std::string text = base64_encode(bin, alphabet);
      EXPECT_EQ(text.size(), alphabet == Base64::kUrl ? (n * 4 + 2) / 3 : (n + 2) / 3 * 4);
      auto back = base64_decode(text, alphabet);
      ASSERT_TRUE(back.has_value()) << text;
      EXPECT_EQ(*back, bin);
    }
  }
}

// Debian 12's libsodium decodes 0x80..0xff as '_': a token with '_' swapped
// for 0xff verified. Every byte outside the alphabet is refused, anywhere.
TEST(Base64, RefusesEveryByteOutsideTheAlphabet) {
  const std::pair<Base64, std::string_view> alphabets[] = {
      {Base64::kUrl, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"},
      {Base64::kStandard, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"}};
  for (const auto& [alphabet, chars] : alphabets) {
    for (int b = 0; b < 256; ++b) {
      const char c = static_cast<char>(b);
      if (chars.find(c) != std::string_view::npos) continue;
      if (alphabet == Base64::kStandard && c == '=') continue;  // padding: PaddingIsExactlyTheAlphabets
      for (size_t pos = 0; pos < 4; ++pos) {
        std::string text = "AAAA";
        text[pos] = c;
        EXPECT_FALSE(base64_decode(text, alphabet).has_value()) << "byte " << b << " at " << pos;
      }
    }
  }
}

TEST(Base64, PaddingIsExactlyTheAlphabets) {
  EXPECT_FALSE(base64_decode("Zg==", Base64::kUrl).has_value());
  EXPECT_FALSE(base64_decode("Zg=", Base64::kUrl).has_value());
  EXPECT_EQ(base64_decode("Zg==", Base64::kStandard).value(), "f");
  EXPECT_EQ(base64_decode("Zm8=", Base64::kStandard).value(), "fo");
  EXPECT_FALSE(base64_decode("Zg", Base64::kStandard).has_value());      // unpadded
  EXPECT_FALSE(base64_decode("Zg=", Base64::kStandard).has_value());     // short padding
  EXPECT_FALSE(base64_decode("Z===", Base64::kStandard).has_value());    // 6 bits cannot end a byte
  EXPECT_FALSE(base64_decode("Zg==Zg==", Base64::kStandard).has_value());  // padding inside
  EXPECT_FALSE(base64_decode("Zm9v====", Base64::kStandard).has_value());
  for (Base64 alphabet : {Base64::kUrl, Base64::kStandard}) {
    EXPECT_FALSE(base64_decode("Z", alphabet).has_value());
    EXPECT_FALSE(base64_decode("Zm9vY", alphabet).has_value());
    EXPECT_FALSE(base64_decode("Zm9v Zm9v", alphabet).has_value());
    EXPECT_EQ(base64_decode("", alphabet).value(), "");
  }
}

// "Zh" and "Zg" would both decode to "f" if the unused low bits were ignored.
TEST(Base64, RefusesNonZeroTrailingBits) {
  EXPECT_EQ(base64_decode("Zg", Base64::kUrl).value(), "f");
  for (const char* text : {"Zh", "Zi", "Zv", "Zm9", "Zm-"}) {
    EXPECT_FALSE(base64_decode(text, Base64::kUrl).has_value()) << text;
  }
  for (const char* text : {"Zh==", "Zm9=", "Zm+="}) {
    EXPECT_FALSE(base64_decode(text, Base64::kStandard).has_value()) << text;
  }
  EXPECT_EQ(base64_decode("Zm8", Base64::kUrl).value(), "fo");
}

}  // namespace
}  // namespace ckv
