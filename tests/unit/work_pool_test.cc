// Unit tests for src/etcd/work_pool.h: the pool runs what is posted (inline once stopped), and BurstHandoff batches a burst into one drain.
#include "etcd/work_pool.h"

#include <atomic>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace ckv::etcd {
namespace {

TEST(WorkPool, RunsEveryTaskAndInlineOnceStopped) {
  WorkPool pool(3, "test-pool");
  std::atomic<int> ran{0};
  for (int i = 0; i < 1000; ++i) pool.post([&] { ++ran; });
  pool.stop();  // runs what is queued, then joins
  EXPECT_EQ(ran.load(), 1000);
  const auto caller = std::this_thread::get_id();
  std::thread::id where;
  pool.post([&] { where = std::this_thread::get_id(); });
  EXPECT_EQ(where, caller);
}

// A burst posted while the drain it started has not run yet rides along with
// it: the pool sees one task for the whole burst, and the burst keeps its order.
TEST(BurstHandoff, ABurstRunsAsOneDrainInOrder) {
  WorkPool pool(1, "test-pool");
  BurstHandoff handoff(pool);
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<void> blocked;
  pool.post([&] {
    blocked.set_value();
    released.wait();  // the only worker is busy: nothing else starts meanwhile
  });
  blocked.get_future().wait();
  std::mutex mu;
  std::vector<int> order;
  auto post_task = [&](int i) {
    handoff.post([&, i] {
      std::lock_guard lock(mu);
      order.push_back(i);
    });
  };
  for (int i = 0; i < 250; ++i) post_task(i);
  // Queued in the pool behind the burst's one drain: tasks added to the
  // burst after this still run in that drain, before it.
  std::atomic<size_t> seen_by_next_pool_task{0};
  pool.post([&] {
    std::lock_guard lock(mu);
    seen_by_next_pool_task = order.size();
  });
  for (int i = 250; i < 500; ++i) post_task(i);
  release.set_value();
  pool.stop();
  ASSERT_EQ(order.size(), 500u);
  for (int i = 0; i < 500; ++i) EXPECT_EQ(order[static_cast<size_t>(i)], i);
  EXPECT_EQ(seen_by_next_pool_task.load(), 500u);
  // After the drain, a new post starts a new drain (inline now: stopped).
  bool again = false;
  handoff.post([&] { again = true; });
  EXPECT_TRUE(again);
}

}  // namespace
}  // namespace ckv::etcd
