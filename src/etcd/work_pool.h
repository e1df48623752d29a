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

namespace ckv::etcd {

// Runs tasks on a few threads, so Node callbacks (on the Raft thread) only
// hand their result off. Tasks posted after stop() run inline: by then the
// Node has stopped, so no caller is the Raft thread.
class WorkPool {
 public:
  explicit WorkPool(int threads) {
    for (int i = 0; i < std::max(1, threads); ++i) threads_.emplace_back([this] { run(); });
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

}  // namespace ckv::etcd
