// Test helpers shared by the TcpTransport unit tests (plain and TLS): an inbox, a node on 127.0.0.1, messages, waiting with a deadline.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "raft/messages.h"
#include "transport/tcp_transport.h"

namespace ckv::transport::testing_support {

// Generous: these bound a wait for a condition, they are not expected delays.
inline constexpr auto kDeadline = std::chrono::seconds(10);

// Collects what a transport delivers; tests wait on a condition with a deadline.
class Inbox {
 public:
  Transport::Handler handler() {
    return [this](raft::Message m) {
      std::unique_lock lock(mu_);
      msgs_.push_back(std::move(m));
      cv_.notify_all();
      // Held: the transport's reader stops here, so its socket fills up.
      cv_.wait(lock, [&] { return !held_; });
    };
  }
  // From the next delivery until release(), the delivering thread waits.
  void hold() {
    std::lock_guard lock(mu_);
    held_ = true;
  }
  void release() {
    std::lock_guard lock(mu_);
    held_ = false;
    cv_.notify_all();
  }
  // Waits until at least n messages arrived; false on timeout.
  bool wait_for_count(size_t n, std::chrono::milliseconds timeout = kDeadline) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return msgs_.size() >= n; });
  }
  std::vector<raft::Message> messages() {
    std::lock_guard lock(mu_);
    return msgs_;
  }
  size_t size() {
    std::lock_guard lock(mu_);
    return msgs_.size();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<raft::Message> msgs_;
  bool held_ = false;
};

// A node under test: transport on 127.0.0.1, port chosen by the kernel
// (or a given one, to restart on the same port).
struct TestNode {
  explicit TestNode(raft::NodeId id, uint16_t port = 0, const TcpTransportOptions& opts = {})
      : id(id), transport(id, "127.0.0.1:" + std::to_string(port), opts) {
    Status s = transport.listen();
    EXPECT_TRUE(s.is_ok()) << s.to_string();
    transport.start(inbox.handler());
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(transport.listen_port()); }

  raft::NodeId id;
  Inbox inbox;  // declared first so it outlives the transport's I/O thread
  TcpTransport transport;
};

inline raft::Message msg(raft::NodeId from, raft::NodeId to, uint64_t seq) {
  raft::Message m;
  m.type = raft::MessageType::kAppend;
  m.from = from;
  m.to = to;
  m.term = 1;
  m.context = seq;
  m.entries.push_back(
      raft::Entry{1, seq, raft::EntryType::kNormal, "value-" + std::to_string(seq)});
  return m;
}

// Polls a condition that has no notifier (transport counters) until a deadline.
inline bool eventually(const std::function<bool()>& cond, std::chrono::milliseconds timeout = kDeadline) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return cond();
}

// A listening socket on 127.0.0.1 at a port the kernel picks (a fake or
// silent peer); returns the port, or 0 on failure. The caller closes fd.
inline uint16_t listen_loopback(int& fd) {
  fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd, 4) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return 0;
  }
  return ntohs(addr.sin_port);
}

}  // namespace ckv::transport::testing_support
