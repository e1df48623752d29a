// release_free_memory gives freed heap pages back: the resident set shrinks after it.
#include "common/release_memory.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <vector>

namespace ckv {
namespace {

long resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  long size = 0, resident = 0;
  statm >> size >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

TEST(ReleaseMemory, FreedBlocksBetweenLiveOnesGoBackToTheSystem) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "the sanitizers' allocators keep freed memory in quarantine";
#endif
  // 64 KiB blocks stay below glibc's mmap threshold, so they come from the
  // heap; freeing every other one leaves whole free pages between live
  // blocks, which free() alone does not return (only a free top is trimmed).
  constexpr size_t kBlock = 64 * 1024;
  constexpr int kBlocks = 2048;  // 128 MiB
  std::vector<char*> blocks;
  for (int i = 0; i < kBlocks; ++i) {
    auto* p = static_cast<char*>(std::malloc(kBlock));
    ASSERT_NE(p, nullptr);
    std::memset(p, i & 0xff, kBlock);
    blocks.push_back(p);
  }
  for (int i = 0; i < kBlocks; i += 2) std::free(blocks[i]);
  const long before = resident_bytes();
  release_free_memory();
  const long after = resident_bytes();
  // About half the blocks (64 MiB) were free; ask for a quarter back.
  EXPECT_LT(after, before - static_cast<long>(kBlock) * kBlocks / 4) << "before " << before << " after " << after;
  for (int i = 1; i < kBlocks; i += 2) std::free(blocks[i]);
}

}  // namespace
}  // namespace ckv
