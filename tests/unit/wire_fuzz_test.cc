// Seeded fuzz tests of everything that parses bytes from a peer: decode_message, decode_hello, next_frame and FrameReader.
//
// Inputs: random bytes, bit flips, truncations and splices of valid frames,
// and huge lengths and counts. Checks: nothing crashes (run under ASan with
// -DCKV_SANITIZE=ON for out-of-bounds reads), no single allocation is larger
// than the input could describe, and FrameReader never holds more than one
// frame plus one read. The default run takes a few seconds; on failure the
// seed is printed, and CKV_FUZZ_SEED=<seed> (and CKV_FUZZ_ITERATIONS=<n>)
// replays or extends it.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/bytes.h"
#include "raft/messages.h"
#include "raft/types.h"
#include "transport/message_codec.h"
#include "transport/stream_codec.h"

// Allocation tracking for "never allocates more than the input describes":
// the largest single allocation made by this thread while tracking is on.
// Replacing the global operator new is the standard way to observe it; the
// replacement only forwards to malloc, so other tests are unaffected.
namespace {
thread_local bool g_tracking = false;
thread_local size_t g_largest_allocation = 0;
}  // namespace

// noinline: inlined, GCC 12 pairs the free() below with the new-expression
// at each call site and reports a false -Wmismatched-new-delete.
[[gnu::noinline]] void* operator new(size_t n) {
  if (g_tracking && n > g_largest_allocation) g_largest_allocation = n;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, size_t) noexcept { std::free(p); }
// The nothrow forms too (std::stable_sort's temporary buffer uses them): a
// replaced operator delete must free what every operator new of this binary
// returned, or ASan reports an alloc-dealloc mismatch in unrelated tests.
[[gnu::noinline]] void* operator new(size_t n, const std::nothrow_t&) noexcept {
  if (g_tracking && n > g_largest_allocation) g_largest_allocation = n;
  return std::malloc(n == 0 ? 1 : n);
}
[[gnu::noinline]] void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
// Arrays go through operator new / delete above by default ([new.delete.array]).

namespace ckv::transport {
namespace {

constexpr uint64_t kDefaultSeed = 20261201;
constexpr int kDefaultIterations = 200000;
// A decoded message may hold a few times its input (an Entry is larger than
// its 21 encoded bytes); anything beyond this is an allocation the input did
// not describe.
constexpr size_t kAllocationFactor = 4;
constexpr size_t kAllocationSlackBytes = 4096;

uint64_t seed_from_env() {
  const char* s = std::getenv("CKV_FUZZ_SEED");
  return s ? std::strtoull(s, nullptr, 10) : kDefaultSeed;
}

int iterations_from_env() {
  const char* s = std::getenv("CKV_FUZZ_ITERATIONS");
  return s ? std::atoi(s) : kDefaultIterations;
}

class AllocationProbe {
 public:
  AllocationProbe() {
    g_largest_allocation = 0;
    g_tracking = true;
  }
  ~AllocationProbe() { g_tracking = false; }
  size_t largest() const { return g_largest_allocation; }
};

// Messages of every type with varied contents: the valid inputs mutations start from.
std::vector<std::string> valid_payloads(std::mt19937_64& rng) {
  std::vector<std::string> out;
  const auto last = static_cast<uint8_t>(raft::MessageType::kPropResp);
  for (uint8_t t = 0; t <= last; ++t) {
    raft::Message m;
    m.type = static_cast<raft::MessageType>(t);
    m.from = rng();
    m.to = rng();
    m.term = rng() % 1000;
    m.log_index = rng();
    m.commit = rng();
    m.reject = rng() % 2;
    for (uint64_t i = 0, n = rng() % 4; i < n; ++i) {
      m.entries.push_back(raft::Entry{rng() % 9, rng() % 100, raft::EntryType::kNormal,
                                      std::string(rng() % 64, 'e')});
    }
    if (rng() % 2) {
      raft::Membership conf;
      conf.members.push_back(raft::Member{1 + rng() % 50, raft::MemberRole::kVoter, "ctx"});
      m.entries.push_back(
          raft::Entry{1, 7, raft::EntryType::kConfig, raft::encode_membership(conf)});
      m.snapshot.membership = conf;
    }
    m.data = std::string(rng() % 128, 'd');
    out.push_back(encode_message(m));
  }
  return out;
}

std::string valid_hello(std::mt19937_64& rng) {
  Hello h;
  h.kind = static_cast<HelloKind>(rng() % 3);
  h.from = rng();
  h.to = rng();
  h.sender.name = std::string(rng() % 40, 'n');
  h.sender.raft_address = "127.0.0.1:5000";
  h.sender.api_address = "127.0.0.1:8000";
  h.sender.incarnation = std::string(32, 'a');
  h.sender.cluster_id = rng();
  return encode_hello_frame(h).substr(kFrameHeaderBytes);
}

// One mutation of input: flips, random bytes, truncation, a huge length or
// count written at a random place, or pure noise.
std::string mutate(const std::string& input, std::mt19937_64& rng) {
  std::string s = input;
  switch (rng() % 6) {
    case 0:  // bit flips
      for (int i = 0, n = 1 + static_cast<int>(rng() % 8); i < n && !s.empty(); ++i) {
        s[rng() % s.size()] ^= static_cast<char>(1u << (rng() % 8));
      }
      break;
    case 1:  // random bytes
      for (int i = 0, n = 1 + static_cast<int>(rng() % 8); i < n && !s.empty(); ++i) {
        s[rng() % s.size()] = static_cast<char>(rng());
      }
      break;
    case 2:  // truncation
      s.resize(s.empty() ? 0 : rng() % s.size());
      break;
    case 3: {  // a huge u32 (a count or a length) at a random offset
      if (s.size() < 4) break;
      const size_t at = rng() % (s.size() - 3);
      const uint32_t huge = rng() % 2 ? 0xffffffffu : static_cast<uint32_t>(rng() | 0x80000000u);
      for (int i = 0; i < 4; ++i) s[at + i] = static_cast<char>((huge >> (8 * i)) & 0xff);
      break;
    }
    case 4:  // appended garbage
      s.append(rng() % 32, static_cast<char>(rng()));
      break;
    default:  // noise of a similar size
      s.assign(rng() % (input.size() + 16), '\0');
      for (char& c : s) c = static_cast<char>(rng());
      break;
  }
  return s;
}

void expect_bounded_allocation(size_t largest, size_t input_bytes, uint64_t seed, int iter) {
  EXPECT_LE(largest, kAllocationFactor * input_bytes + kAllocationSlackBytes)
      << "an allocation of " << largest << " bytes for " << input_bytes << " bytes of input (seed "
      << seed << ", iteration " << iter << "; replay with CKV_FUZZ_SEED=" << seed << ")";
}

TEST(WireFuzz, DecodeMessageNeverCrashesOrOverAllocates) {
  const uint64_t seed = seed_from_env();
  std::mt19937_64 rng(seed);
  const std::vector<std::string> valid = valid_payloads(rng);
  const int iterations = iterations_from_env();
  for (int iter = 0; iter < iterations; ++iter) {
    const std::string input = mutate(valid[rng() % valid.size()], rng);
    size_t largest = 0;
    bool ok = false;
    {
      AllocationProbe probe;
      auto decoded = decode_message(input);
      ok = decoded.is_ok();
      largest = probe.largest();
      if (ok) {
        // What decodes must encode back to something that decodes the same way.
        auto again = decode_message(encode_message(decoded.value()));
        EXPECT_TRUE(again.is_ok()) << "seed " << seed << ", iteration " << iter;
      }
    }
    expect_bounded_allocation(largest, input.size(), seed, iter);
    if (::testing::Test::HasFailure()) {
      ADD_FAILURE() << "replay with CKV_FUZZ_SEED=" << seed;
      return;
    }
  }
}

TEST(WireFuzz, DecodeHelloNeverCrashesOrOverAllocates) {
  const uint64_t seed = seed_from_env();
  std::mt19937_64 rng(seed + 1);
  const int iterations = iterations_from_env();
  for (int iter = 0; iter < iterations; ++iter) {
    const std::string input = mutate(valid_hello(rng), rng);
    size_t largest = 0;
    {
      AllocationProbe probe;
      auto decoded = decode_hello(input);
      largest = probe.largest();
      if (decoded.is_ok()) {
        EXPECT_LE(decoded->sender.name.size(), kMaxHelloFieldBytes);
        EXPECT_EQ(decoded->sender.id, decoded->from);
      }
    }
    expect_bounded_allocation(largest, input.size(), seed, iter);
    if (::testing::Test::HasFailure()) {
      ADD_FAILURE() << "replay with CKV_FUZZ_SEED=" << seed;
      return;
    }
  }
}

// A stream of valid frames, mutated, fed to FrameReader in random chunk
// sizes: it never holds more than one frame plus one read, allocates in
// proportion to what it received, and agrees with next_frame() on the
// frames it accepts.
TEST(WireFuzz, FrameReaderStaysBoundedOnHostileStreams) {
  const uint64_t seed = seed_from_env();
  std::mt19937_64 rng(seed + 2);
  const std::vector<std::string> valid = valid_payloads(rng);
  // Well above one read (kMaxReadGrowBytes), so that reserving what a header
  // claims, rather than what arrived, shows in the allocation bound.
  constexpr uint32_t kLimit = 16u << 20;
  const int streams = std::max(1, iterations_from_env() / 20);
  for (int iter = 0; iter < streams; ++iter) {
    std::string stream;
    for (int f = 0, n = 1 + static_cast<int>(rng() % 8); f < n; ++f) {
      Status s = append_frame(valid[rng() % valid.size()], stream);
      ASSERT_TRUE(s.is_ok());
    }
    if (rng() % 2) stream = mutate(stream, rng);
    if (rng() % 8 == 0) {
      // A header claiming a huge frame, then a little of it.
      std::string header;
      put_u32le(header, static_cast<uint32_t>(rng() % (kLimit * 2)));
      put_u32le(header, static_cast<uint32_t>(rng()));
      stream = header + std::string(rng() % 4096, 'p');
    }
    FrameReader reader(kLimit);
    size_t fed = 0;
    bool failed = false;
    while (fed < stream.size() && !failed) {
      const size_t want = reader.next_read_bytes();
      ASSERT_GE(want, 1u);
      ASSERT_LE(want, FrameReader::kMaxReadGrowBytes);
      const size_t got = std::min<size_t>(stream.size() - fed, 1 + rng() % want);
      {
        AllocationProbe probe;
        std::memcpy(reader.prepare(want), stream.data() + fed, got);
        reader.commit(got);
        // Room for one read beyond what was received, doubled at most.
        EXPECT_LE(probe.largest(), 2 * (reader.buffered_bytes() + want) + kAllocationSlackBytes)
            << "seed " << seed << ", stream " << iter;
      }
      fed += got;
      for (;;) {
        auto frame = reader.next();
        if (!frame.is_ok()) {
          failed = true;
          break;
        }
        if (!frame.value()) break;
        EXPECT_LE(frame.value()->size(), kLimit);
        // The CRC passed: decoding may still refuse it, but must not crash.
        (void)decode_message(*frame.value());
      }
      EXPECT_LE(reader.buffered_bytes(),
                kFrameHeaderBytes + kLimit + FrameReader::kMaxReadGrowBytes)
          << "seed " << seed << ", stream " << iter;
      EXPECT_LE(reader.capacity_bytes(),
                2 * (kFrameHeaderBytes + kLimit + FrameReader::kMaxReadGrowBytes))
          << "seed " << seed << ", stream " << iter;
    }
    if (::testing::Test::HasFailure()) {
      ADD_FAILURE() << "replay with CKV_FUZZ_SEED=" << seed;
      return;
    }
  }
}

// next_frame (the one-shot form) on the same kind of input: errors for bad
// lengths and checksums, nullopt for prefixes, never a read past the end.
TEST(WireFuzz, NextFrameNeverCrashes) {
  const uint64_t seed = seed_from_env();
  std::mt19937_64 rng(seed + 3);
  const std::vector<std::string> valid = valid_payloads(rng);
  const int iterations = iterations_from_env();
  for (int iter = 0; iter < iterations; ++iter) {
    std::string framed;
    ASSERT_TRUE(append_frame(valid[rng() % valid.size()], framed).is_ok());
    const std::string input = mutate(framed, rng);
    AllocationProbe probe;
    auto frame = next_frame(input);
    if (frame.is_ok() && frame.value()) {
      EXPECT_LE(frame.value()->frame_bytes, input.size())
          << "seed " << seed << ", iteration " << iter;
    }
    EXPECT_LE(probe.largest(), kAllocationSlackBytes) << "seed " << seed << ", iteration " << iter;
    if (::testing::Test::HasFailure()) {
      ADD_FAILURE() << "replay with CKV_FUZZ_SEED=" << seed;
      return;
    }
  }
}

}  // namespace
}  // namespace ckv::transport
