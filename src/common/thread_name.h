// Threads named for their job (what top -H, perf and /proc/<pid>/task/*/comm show), so a profile tells the Raft thread from a worker.
#pragma once

#include <cstddef>
#include <thread>
#include <utility>

#include <pthread.h>

namespace ckv {

// Names the calling thread. Linux keeps at most 15 characters; longer names are cut.
inline void name_this_thread(const char* name) {
  char buf[16] = {};
  for (size_t i = 0; i + 1 < sizeof buf && name[i] != '\0'; ++i) buf[i] = name[i];
  pthread_setname_np(pthread_self(), buf);
}

// A thread that names itself, then runs body. name must outlive the start (a literal).
template <typename F>
std::thread named_thread(const char* name, F&& body) {
  return std::thread([name, body = std::forward<F>(body)]() mutable {
    name_this_thread(name);
    body();
  });
}

}  // namespace ckv
