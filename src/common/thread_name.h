// Names the calling thread (what top -H, perf and /proc/<pid>/task/*/comm show), so a profile tells the Raft thread from a worker.
#pragma once

#include <cstddef>

#include <pthread.h>

namespace ckv {

// Linux keeps at most 15 characters of a thread's name; longer ones are cut.
inline void name_this_thread(const char* name) {
  char buf[16] = {};
  for (size_t i = 0; i + 1 < sizeof buf && name[i] != '\0'; ++i) buf[i] = name[i];
  pthread_setname_np(pthread_self(), buf);
}

}  // namespace ckv
