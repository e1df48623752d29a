// Strict base64 (see base64.h).
#include "common/base64.h"

#include <array>
#include <cstdint>

namespace ckv {

namespace {

constexpr std::string_view kUrlAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::string_view kStandardAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr uint8_t kInvalid = 0xff;

using DecodeTable = std::array<uint8_t, 256>;

constexpr DecodeTable make_decode_table(std::string_view alphabet) {
  DecodeTable t{};
  for (auto& v : t) v = kInvalid;
  for (size_t i = 0; i < alphabet.size(); ++i) t[static_cast<unsigned char>(alphabet[i])] = static_cast<uint8_t>(i);
  return t;
}
constexpr DecodeTable kUrlDecode = make_decode_table(kUrlAlphabet);
constexpr DecodeTable kStandardDecode = make_decode_table(kStandardAlphabet);

}  // namespace

std::string base64_encode(std::string_view bin, Base64 alphabet) {
  const std::string_view chars = alphabet == Base64::kUrl ? kUrlAlphabet : kStandardAlphabet;
  std::string out;
  out.reserve((bin.size() + 2) / 3 * 4);
  uint32_t acc = 0;
  int bits = 0;
  for (const char c : bin) {
    acc = ((acc << 8) | static_cast<unsigned char>(c)) & 0xffff;  // at most 14 live bits
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(chars[(acc >> bits) & 0x3f]);
    }
  }
  if (bits > 0) out.push_back(chars[(acc << (6 - bits)) & 0x3f]);
  if (alphabet == Base64::kStandard) out.append((4 - out.size() % 4) % 4, '=');
  return out;
}

std::optional<std::string> base64_decode(std::string_view text, Base64 alphabet) {
  if (alphabet == Base64::kStandard) {
    if (text.size() % 4 != 0) return std::nullopt;
    for (int pad = 0; pad < 2 && !text.empty() && text.back() == '='; ++pad) text.remove_suffix(1);
  }
  if (text.size() % 4 == 1) return std::nullopt;  // 6 bits cannot end a byte
  const DecodeTable& table = alphabet == Base64::kUrl ? kUrlDecode : kStandardDecode;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (const char c : text) {
    const uint8_t v = table[static_cast<unsigned char>(c)];
    if (v == kInvalid) return std::nullopt;  // '=' inside the text too
    acc = ((acc << 6) | v) & 0xfff;  // at most 12 live bits
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  // The 2 or 4 bits left over are padding inside the last character.
  if ((acc & ((1U << bits) - 1)) != 0) return std::nullopt;
  return out;
}

}  // namespace ckv
