// The simulator's only source of randomness: one seed drives every choice, so a seed replays exactly.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <vector>

namespace ckv::sim {

// splitmix64 (Steele et al.): tiny, fast, and good enough to drive a fuzzer;
// unlike std::uniform_int_distribution its output is identical on every
// standard library, so a seed replays the same run everywhere.
inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Derives an independent seed (e.g. a Raft node's Options::random_seed) from the run's seed.
inline uint64_t derive_seed(uint64_t seed, uint64_t salt) {
  uint64_t s = seed ^ (salt * 0xd1b54a32d192ed03ULL);
  return splitmix64(s);
}

class SimRng {
 public:
  explicit SimRng(uint64_t seed) : state_(seed) {}

  uint64_t next() { return splitmix64(state_); }
  // Uniform in [lo, hi], both inclusive (modulo bias is irrelevant here).
  // [lo, hi]; hi < lo is a simulator bug (it would divide by zero or wrap).
  uint64_t range(uint64_t lo, uint64_t hi) {
    if (hi < lo) std::abort();
    return lo + next() % (hi - lo + 1);
  }
  bool chance(double p) { return static_cast<double>(next() >> 11) * 0x1.0p-53 < p; }
  template <class T>
  const T& pick(const std::vector<T>& v) {
    return v[next() % v.size()];
  }

 private:
  uint64_t state_;
};

}  // namespace ckv::sim
