// Handing memory the process freed back to the system, whichever malloc serves it (jemalloc or glibc's).
//
// kvnode links jemalloc (CMakeLists.txt), which returns freed pages by
// itself after a few seconds (its dirty page decay); glibc's malloc, which
// the sanitizer builds use, keeps them until malloc_trim. A defragment asks
// for the release now, the counterpart of the free pages etcd's defrag gives
// back.
#pragma once

namespace ckv {

// Purges jemalloc's arenas when jemalloc serves malloc, else runs
// malloc_trim(0). Takes tens of milliseconds on a large heap; thread-safe.
void release_free_memory();

}  // namespace ckv
