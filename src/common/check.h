// KV_CHECK: aborts with a message when a broken invariant means continuing would corrupt data.
#pragma once

#include <cstdio>
#include <cstdlib>

// Expected failures are returned as values; KV_CHECK is only for programmer
// errors and impossible states, where stopping is safer than going on.
#define KV_CHECK(cond, ...)                                                         \
  do {                                                                              \
    if (!(cond)) [[unlikely]] {                                                     \
      std::fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
      std::fprintf(stderr, __VA_ARGS__);                                            \
      std::fputc('\n', stderr);                                                     \
      std::abort();                                                                 \
    }                                                                               \
  } while (0)
