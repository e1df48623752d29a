// Releasing freed memory to the system (see release_memory.h).
#include "common/release_memory.h"

#include <malloc.h>

#include <cstddef>

// jemalloc's control interface, present only when jemalloc is linked: a weak
// reference resolves to null otherwise, so this file builds and runs either way.
extern "C" int mallctl(const char* name, void* oldp, size_t* oldlenp, void* newp, size_t newlen)
    __attribute__((weak));

namespace ckv {

void release_free_memory() {
  if (mallctl != nullptr) {
    // "arena.<MALLCTL_ARENAS_ALL>.purge": every arena's unused dirty pages, now.
    constexpr const char* kPurgeAllArenas = "arena.4096.purge";
    if (mallctl(kPurgeAllArenas, nullptr, nullptr, nullptr, 0) == 0) return;
  }
  ::malloc_trim(0);
}

}  // namespace ckv
