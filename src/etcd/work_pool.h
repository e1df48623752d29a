// A small fixed pool of worker threads with a task queue, for the etcd request layers (hand-offs from the Raft thread, password hashing).
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "common/thread_name.h"

namespace ckv::etcd {

// Runs tasks on a few threads, so Node callbacks (on the Raft thread) only
// hand their result off. Tasks posted after stop() run inline: by then the
// Node has stopped, so no caller is the Raft thread.
class WorkPool {
 public:
  // name: the threads' name (at most 15 characters; common/thread_name.h).
  WorkPool(int threads, const char* name) {
    for (int i = 0; i < std::max(1, threads); ++i)
      threads_.push_back(named_thread(name, [this] { run(); }));
  }
  ~WorkPool() { stop(); }

  // Queues task, or runs it inline once the pool has stopped.
  void post(std::function<void()> task) {
    {
      std::lock_guard lock(mu_);
      if (!stopping_) {
        tasks_.push_back(std::move(task));
        cv_.notify_one();
        return;
      }
    }
    task();
  }

  // Queues task unless max_queued tasks already wait (false: not queued,
  // nor run); false once stopped too.
  bool try_post(size_t max_queued, std::function<void()> task) {
    std::lock_guard lock(mu_);
    if (stopping_ || tasks_.size() >= max_queued) return false;
    tasks_.push_back(std::move(task));
    cv_.notify_one();
    return true;
  }

  // Runs what is queued, then joins.
  void stop() {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : threads_) t.join();
  }

 private:
  void run() {
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
      if (tasks_.empty()) return;  // stopping, and drained
      std::function<void()> task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      task();
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

// Hands tasks from a producer that completes many at once (the Raft thread
// answering a batch of applied writes) to a pool in bursts: the first task
// of a burst posts one drain, and tasks added before that drain starts ride
// along with it. One worker wake-up per burst instead of one per task (each
// costs a futex wake and a context switch). For short tasks only: a burst
// runs on one worker, one task after another. Must outlive the pool's
// queued tasks (declare it before the pool, stop the pool first).
class BurstHandoff {
 public:
  explicit BurstHandoff(WorkPool& pool) : pool_(pool) {}

  void post(std::function<void()> task) {
    {
      std::lock_guard lock(mu_);
      pending_.push_back(std::move(task));
      if (drain_posted_) return;
      drain_posted_ = true;
    }
    pool_.post([this] { drain(); });
  }

 private:
  void drain() {
    std::vector<std::function<void()>> burst;
    {
      std::lock_guard lock(mu_);
      burst.swap(pending_);
      drain_posted_ = false;
    }
    for (auto& task : burst) task();
  }

  WorkPool& pool_;
  std::mutex mu_;
  std::vector<std::function<void()>> pending_;
  bool drain_posted_ = false;
};

}  // namespace ckv::etcd
