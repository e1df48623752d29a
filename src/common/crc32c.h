// CRC-32C (Castagnoli): detects torn or corrupted records in the WAL, snapshot files and frames.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace ckv {

// Continues a running CRC: crc32c(crc32c(0, a), b) == crc32c(0, a + b).
// Uses the CPU's CRC32 instruction (SSE4.2) when it has one, else a table.
uint32_t crc32c(uint32_t crc, const void* data, size_t n);
inline uint32_t crc32c(std::string_view s) { return crc32c(0, s.data(), s.size()); }

// The table-driven version, always available (the tests compare both).
uint32_t crc32c_portable(uint32_t crc, const void* data, size_t n);
// True when crc32c() uses the hardware instruction on this CPU.
bool crc32c_uses_hardware();

}  // namespace ckv
