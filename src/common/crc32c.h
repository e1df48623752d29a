// CRC-32C (Castagnoli): detects torn or corrupted records in the log store and snapshot files.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace ckv {

// Continues a running CRC: crc32c(crc32c(0, a), b) == crc32c(0, a + b).
uint32_t crc32c(uint32_t crc, const void* data, size_t n);
inline uint32_t crc32c(std::string_view s) { return crc32c(0, s.data(), s.size()); }

}  // namespace ckv
