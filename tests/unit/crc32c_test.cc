// CRC-32C: known answers (RFC 3720 B.4 and the "123456789" check value), and the hardware path equal to the table.
#include "common/crc32c.h"

#include <random>
#include <string>

#include <gtest/gtest.h>

namespace ckv {
namespace {

TEST(Crc32cTest, KnownAnswers) {
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  std::string ascending;
  for (int i = 0; i < 32; ++i) ascending.push_back(static_cast<char>(i));
  EXPECT_EQ(crc32c(ascending), 0x46DD794Eu);
  std::string descending;
  for (int i = 31; i >= 0; --i) descending.push_back(static_cast<char>(i));
  EXPECT_EQ(crc32c(descending), 0x113FDB5Cu);
  EXPECT_EQ(crc32c(""), 0u);
  EXPECT_EQ(crc32c_portable(0, "123456789", 9), 0xE3069283u);
}

TEST(Crc32cTest, UsesTheHardwareInstructionWhenTheCpuHasIt) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  EXPECT_EQ(crc32c_uses_hardware(), __builtin_cpu_supports("sse4.2") != 0);
#else
  EXPECT_FALSE(crc32c_uses_hardware());
#endif
}

// Every length and alignment (the 8-byte loop, the byte tail, unaligned
// starts), and chaining: both implementations agree.
TEST(Crc32cTest, HardwareMatchesTableAtEveryLengthAndAlignment) {
  std::mt19937_64 rng(20261201);
  std::string buf(300, '\0');
  for (char& c : buf) c = static_cast<char>(rng());
  for (size_t start = 0; start < 8; ++start) {
    for (size_t n = 0; start + n <= buf.size(); ++n) {
      const uint32_t seed = static_cast<uint32_t>(rng());
      ASSERT_EQ(crc32c(seed, buf.data() + start, n), crc32c_portable(seed, buf.data() + start, n))
          << "start " << start << " length " << n;
    }
  }
  EXPECT_EQ(crc32c(crc32c(0, buf.data(), 100), buf.data() + 100, 200), crc32c(0, buf.data(), 300));
}

}  // namespace
}  // namespace ckv
