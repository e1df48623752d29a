// Little helpers to write and read fixed-width integers in byte strings (storage and file formats).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace ckv {

inline void put_u8(std::string& out, uint8_t v) { out.push_back(static_cast<char>(v)); }

inline void put_u32le(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

inline void put_u64le(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// A length-prefixed string: u32 length, then the bytes.
inline void put_string32(std::string& out, std::string_view s) {
  put_u32le(out, static_cast<uint32_t>(s.size()));
  out.append(s);
}

// Big-endian keys sort numerically under byte-wise comparison (LMDB's default).
inline std::string u64_key(uint64_t v) {
  std::string k(8, '\0');
  for (int i = 0; i < 8; ++i) k[7 - i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return k;
}

inline uint64_t key_u64(std::string_view k) {
  uint64_t v = 0;
  for (size_t i = 0; i < k.size() && i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(k[i]);
  return v;
}

// Reads fixed-width fields from a byte string; every read reports whether
// the input was long enough, so decoders never run past the end.
class ByteReader {
 public:
  explicit ByteReader(std::string_view s) : s_(s) {}
  bool u8(uint8_t& v) {
    if (s_.size() - pos_ < 1) return false;
    v = static_cast<uint8_t>(s_[pos_++]);
    return true;
  }
  bool u32le(uint32_t& v) {
    if (s_.size() - pos_ < 4) return false;
    v = 0;
    for (int i = 0; i < 4; ++i) v |= uint32_t{static_cast<uint8_t>(s_[pos_ + i])} << (8 * i);
    pos_ += 4;
    return true;
  }
  bool u64le(uint64_t& v) {
    if (s_.size() - pos_ < 8) return false;
    v = 0;
    for (int i = 0; i < 8; ++i) v |= uint64_t{static_cast<uint8_t>(s_[pos_ + i])} << (8 * i);
    pos_ += 8;
    return true;
  }
  bool bytes(size_t n, std::string& out) {
    if (s_.size() - pos_ < n) return false;
    out.assign(s_.substr(pos_, n));
    pos_ += n;
    return true;
  }
  // Reads what put_string32 wrote; fails on a length over max_bytes or past the end.
  bool string32(std::string& out, size_t max_bytes = SIZE_MAX) {
    uint32_t n = 0;
    return u32le(n) && n <= max_bytes && bytes(n, out);
  }
  std::string_view rest() const { return s_.substr(pos_); }
  size_t remaining() const { return s_.size() - pos_; }
  bool at_end() const { return pos_ == s_.size(); }

 private:
  std::string_view s_;
  size_t pos_ = 0;
};

}  // namespace ckv
