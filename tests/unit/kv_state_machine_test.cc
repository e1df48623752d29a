// KvStateMachine and its command codec: applies in order, idempotent replay, snapshots see a frozen view.
#include "fsm/kv_state_machine.h"

#include <gtest/gtest.h>

#include <thread>

namespace ckv::fsm {
namespace {

Command set(std::string k, std::string v) { return Command{CommandType::kSet, std::move(k), std::move(v)}; }
Command del(std::string k) { return Command{CommandType::kDelete, std::move(k), {}}; }

TEST(CommandCodec, RoundTripsAndRejectsMalformed) {
  for (const Command& c : {set("k", "v"), set("", ""), set("key", std::string("\0bin\xff", 5)), del("gone")}) {
    auto back = decode_command(encode_command(c));
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, c);
  }
  EXPECT_FALSE(decode_command("").has_value());
  EXPECT_FALSE(decode_command(std::string("\x01\x09\x00\x00\x00\x00", 6)).has_value());  // unknown type
  std::string cut = encode_command(set("abcdef", "v"));
  EXPECT_FALSE(decode_command(cut.substr(0, 8)).has_value());  // key cut short
}

TEST(KvStateMachine, AppliesSetAndDeleteInOrder) {
  KvStateMachine sm;
  sm.apply(1, set("a", "1"));
  sm.apply(2, set("a", "2"));
  sm.apply(3, set("b", "x"));
  sm.apply(4, del("b"));
  EXPECT_EQ(sm.get("a"), "2");
  EXPECT_EQ(sm.get("b"), std::nullopt);
  EXPECT_EQ(sm.applied_index(), 4u);
  EXPECT_EQ(sm.size(), 1u);
}

// Replaying the log after a restart must not apply an entry twice.
TEST(KvStateMachine, ReplayAtOrBelowAppliedIsIgnored) {
  KvStateMachine sm;
  sm.apply(5, set("a", "new"));
  sm.apply(3, set("a", "old"));
  EXPECT_EQ(sm.get("a"), "new");
  sm.skip(9);
  EXPECT_EQ(sm.applied_index(), 9u);
}

// A snapshot sees exactly the state at begin_snapshot(), while reads see every later write.
TEST(KvStateMachine, SnapshotViewIsFrozenWhileWritesContinue) {
  KvStateMachine sm;
  sm.apply(1, set("a", "1"));
  sm.apply(2, set("b", "2"));
  auto view = sm.begin_snapshot();
  sm.apply(3, set("a", "changed"));
  sm.apply(4, del("b"));
  sm.apply(5, set("c", "3"));
  EXPECT_EQ(view.index, 2u);
  EXPECT_EQ(*view.map, (KvStateMachine::Map{{"a", "1"}, {"b", "2"}}));
  EXPECT_EQ(sm.get("a"), "changed");
  EXPECT_EQ(sm.get("b"), std::nullopt);
  EXPECT_EQ(sm.get("c"), "3");
  EXPECT_EQ(sm.size(), 2u);
  sm.end_snapshot();
  EXPECT_EQ(sm.get("a"), "changed");
  EXPECT_EQ(sm.get("b"), std::nullopt);
  EXPECT_EQ(sm.get("c"), "3");
  EXPECT_EQ(sm.size(), 2u);
}

// Writes that race with the overlay fold (on the snapshot thread) are never lost or overtaken.
TEST(KvStateMachine, WritesDuringTheFoldWin) {
  KvStateMachine sm;
  uint64_t index = 0;
  for (int i = 0; i < 5000; ++i) sm.apply(++index, set("k" + std::to_string(i), "base"));
  (void)sm.begin_snapshot();
  for (int i = 0; i < 5000; ++i) sm.apply(++index, i % 3 == 0 ? del("k" + std::to_string(i)) : set("k" + std::to_string(i), "overlay"));
  std::thread folder([&] { sm.end_snapshot(); });
  for (int i = 0; i < 5000; i += 2) sm.apply(++index, set("k" + std::to_string(i), "latest"));
  folder.join();
  size_t live = 0;
  for (int i = 0; i < 5000; ++i) {
    const std::string k = "k" + std::to_string(i);
    const char* want = i % 2 == 0 ? "latest" : (i % 3 == 0 ? nullptr : "overlay");
    if (want == nullptr) {
      EXPECT_EQ(sm.get(k), std::nullopt) << k;
    } else {
      EXPECT_EQ(sm.get(k), want) << k;
      live++;
    }
  }
  EXPECT_EQ(sm.size(), live);
  (void)sm.begin_snapshot();  // a new snapshot may start once the fold is done
  sm.end_snapshot();
}

TEST(KvStateMachine, RestoreReplacesEverything) {
  KvStateMachine sm;
  sm.apply(1, set("old", "x"));
  sm.restore(KvStateMachine::Map{{"new", "y"}}, 40);
  EXPECT_EQ(sm.get("old"), std::nullopt);
  EXPECT_EQ(sm.get("new"), "y");
  EXPECT_EQ(sm.applied_index(), 40u);
}

}  // namespace
}  // namespace ckv::fsm
