// Unit tests for src/transport/tcp_transport.h: real TCP on 127.0.0.1 — ordering, large frames, dead peers, reconnects.
#include "transport/tcp_transport.h"

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "raft/messages.h"

namespace ckv::transport {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Generous: these bound a wait for a condition, they are not expected delays.
constexpr auto kDeadline = 10s;

// Collects what a transport delivers; tests wait on a condition with a deadline.
class Inbox {
 public:
  Transport::Handler handler() {
    return [this](raft::Message m) {
      std::lock_guard lock(mu_);
      msgs_.push_back(std::move(m));
      cv_.notify_all();
    };
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

raft::Message msg(raft::NodeId from, raft::NodeId to, uint64_t seq) {
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
bool eventually(const std::function<bool()>& cond, std::chrono::milliseconds timeout = kDeadline) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return cond();
}

// A port on which nothing listens: bound by the kernel, then released.
uint16_t dead_port() {
  TcpTransport t(99, "127.0.0.1:0");
  Status s = t.listen();
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  return t.listen_port();
}

TEST(TcpTransportAddress, ParsesHostPortForms) {
  auto v4 = parse_host_port("127.0.0.1:5000");
  ASSERT_TRUE(v4.is_ok());
  EXPECT_EQ(v4->host, "127.0.0.1");
  EXPECT_EQ(v4->port, 5000);
  auto v6 = parse_host_port("[::1]:7");
  ASSERT_TRUE(v6.is_ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 7);
  auto any = parse_host_port(":5000");
  ASSERT_TRUE(any.is_ok());
  EXPECT_EQ(any->host, "");
  for (const char* bad :
       {"", "localhost", "host:", "host:x", "host:65536", "::1:5", "[::1]5", "[::1"}) {
    EXPECT_FALSE(parse_host_port(bad).is_ok()) << bad;
  }
}

TEST(TcpTransport, ListenFailsClearlyOnPortInUse) {
  TestNode a(1);
  TcpTransport b(2, a.address());
  Status s = b.listen();
  EXPECT_EQ(s.code(), StatusCode::kIo) << s.to_string();
  TcpTransport c(3, "no-port");
  EXPECT_EQ(c.listen().code(), StatusCode::kInvalid);
}

// transport.h: one stream per peer, so a peer receives messages in send order.
TEST(TcpTransport, TwoNodesDeliverInOrderBothWays) {
  TestNode a(1);
  TestNode b(2);
  a.transport.set_peer(2, b.address());
  b.transport.set_peer(1, a.address());
  constexpr uint64_t kCount = 2000;
  for (uint64_t i = 0; i < kCount; ++i) {
    a.transport.send(msg(1, 2, i));
    b.transport.send(msg(2, 1, i));
  }
  ASSERT_TRUE(b.inbox.wait_for_count(kCount)) << "b got " << b.inbox.size();
  ASSERT_TRUE(a.inbox.wait_for_count(kCount)) << "a got " << a.inbox.size();
  auto at_b = b.inbox.messages();
  for (uint64_t i = 0; i < kCount; ++i) {
    ASSERT_EQ(at_b[i].context, i);
    EXPECT_EQ(at_b[i].from, 1u);
    EXPECT_EQ(at_b[i].to, 2u);
    ASSERT_EQ(at_b[i].entries.size(), 1u);
    EXPECT_EQ(at_b[i].entries[0].data, "value-" + std::to_string(i));
  }
  auto at_a = a.inbox.messages();
  for (uint64_t i = 0; i < kCount; ++i) ASSERT_EQ(at_a[i].context, i);
  EXPECT_EQ(a.transport.stats().messages_dropped, 0u);
  EXPECT_EQ(b.transport.stats().messages_received, kCount);
}

// Per-sender order holds with three nodes all sending to each other at once.
TEST(TcpTransport, ThreeNodesAllToAllKeepPerSenderOrder) {
  std::vector<std::unique_ptr<TestNode>> nodes;
  for (raft::NodeId id = 1; id <= 3; ++id) nodes.push_back(std::make_unique<TestNode>(id));
  for (auto& from : nodes) {
    for (auto& to : nodes) {
      if (from != to) from->transport.set_peer(to->id, to->address());
    }
  }
  constexpr uint64_t kCount = 500;
  std::vector<std::thread> senders;
  for (auto& from : nodes) {
    senders.emplace_back([&, n = from.get()] {
      for (uint64_t i = 0; i < kCount; ++i) {
        for (auto& to : nodes) {
          if (to->id != n->id) n->transport.send(msg(n->id, to->id, i));
        }
      }
    });
  }
  for (auto& t : senders) t.join();
  for (auto& node : nodes) {
    ASSERT_TRUE(node->inbox.wait_for_count(2 * kCount))
        << "node " << node->id << " got " << node->inbox.size();
    std::map<raft::NodeId, uint64_t> next;
    for (const raft::Message& m : node->inbox.messages()) {
      EXPECT_EQ(m.to, node->id);
      EXPECT_EQ(m.context, next[m.from]) << "from " << m.from << " at node " << node->id;
      next[m.from] = m.context + 1;
    }
    EXPECT_EQ(next.size(), 2u);
  }
}

// A full InstallSnapshot chunk (1 MiB of data) crosses intact, between small messages.
TEST(TcpTransport, OneMebibyteSnapshotChunkIsDelivered) {
  TestNode a(1);
  TestNode b(2);
  a.transport.set_peer(2, b.address());
  raft::Message chunk;
  chunk.type = raft::MessageType::kSnapshot;
  chunk.from = 1;
  chunk.to = 2;
  chunk.snapshot.index = 100;
  chunk.data.resize(1 << 20);
  for (size_t i = 0; i < chunk.data.size(); ++i) chunk.data[i] = static_cast<char>((i * 7919) >> 3);
  chunk.data_length = chunk.data.size();
  chunk.done = true;
  a.transport.send(msg(1, 2, 0));
  a.transport.send(chunk);
  a.transport.send(msg(1, 2, 2));
  ASSERT_TRUE(b.inbox.wait_for_count(3));
  auto got = b.inbox.messages();
  EXPECT_EQ(got[0].context, 0u);
  EXPECT_EQ(got[1].type, raft::MessageType::kSnapshot);
  EXPECT_EQ(got[1].data, chunk.data);
  EXPECT_TRUE(got[1].done);
  EXPECT_EQ(got[2].context, 2u);
}

// transport.h: a dead peer cannot stall the others; its messages are dropped, send() never blocks.
TEST(TcpTransport, DeadPeerDoesNotStallLivePeer) {
  TestNode a(1);
  TestNode b(2);
  a.transport.set_peer(3, "127.0.0.1:" + std::to_string(dead_port()));
  a.transport.set_peer(2, b.address());
  const auto start = Clock::now();
  for (uint64_t i = 0; i < 10000; ++i) a.transport.send(msg(1, 3, i));  // overflows its queue too
  a.transport.send(msg(1, 2, 7));
  const auto send_time = Clock::now() - start;
  ASSERT_TRUE(b.inbox.wait_for_count(1, 2000ms)) << "live peer stalled behind the dead one";
  EXPECT_LT(Clock::now() - start, 2s);
  EXPECT_LT(send_time, 2s) << "send() must not wait for the network";
  EXPECT_EQ(b.inbox.messages()[0].context, 7u);
  EXPECT_TRUE(eventually([&] { return a.transport.stats().connect_failures >= 1; }));
  EXPECT_TRUE(eventually([&] { return a.transport.stats().messages_dropped >= 10000 - 4096; }));
}

// After the receiver restarts on the same port the sender reconnects (backoff
// capped at 2 s) and delivery resumes; Raft resends, so the test does too.
TEST(TcpTransport, ReconnectsAfterReceiverRestartsOnSamePort) {
  TestNode a(1);
  auto b = std::make_unique<TestNode>(2);
  const uint16_t port = b->transport.listen_port();
  a.transport.set_peer(2, b->address());
  a.transport.send(msg(1, 2, 0));
  ASSERT_TRUE(b->inbox.wait_for_count(1));

  b.reset();  // stop(): closes its sockets, a sees EOF
  // Sends while b is down must not block and must be dropped, not hoarded.
  for (uint64_t i = 0; i < 100; ++i) a.transport.send(msg(1, 2, 1000 + i));

  b = std::make_unique<TestNode>(2, port);
  const auto deadline = Clock::now() + kDeadline;
  uint64_t seq = 1;
  while (b->inbox.size() == 0 && Clock::now() < deadline) {
    a.transport.send(msg(1, 2, seq++));
    b->inbox.wait_for_count(1, 20ms);
  }
  ASSERT_GT(b->inbox.size(), 0u) << "no delivery after restart";
  EXPECT_GE(a.transport.stats().connects, 2u);
  // What arrives after the restart is still in send order (seq < 1000: sent
  // after the restart; a few of the 1000+ may precede them if a reconnected
  // before noticing the old stream end, which is still send order).
  ASSERT_TRUE(eventually([&] {
    a.transport.send(msg(1, 2, seq++));
    return b->inbox.size() >= 5;
  }));
  uint64_t next = 0;
  for (const raft::Message& m : b->inbox.messages()) {
    if (m.context >= 1000) continue;
    EXPECT_GE(m.context, next);
    next = m.context + 1;
  }
}

// A new stream from a sender replaces its older one: after a partition the
// old stream may never see a FIN, and the receiver, which never writes on
// it, would keep it (and its slot under max_inbound_connections) forever.
TEST(TcpTransport, NewStreamFromSameSenderClosesTheOlderOne) {
  TestNode b(2);
  TestNode first(1);
  first.transport.set_peer(2, b.address());
  first.transport.send(msg(1, 2, 0));
  ASSERT_TRUE(b.inbox.wait_for_count(1));
  ASSERT_EQ(first.transport.stats().connects, 1u);

  // Another process claiming the same id (a restarted node whose old stream
  // is half-dead looks the same to b) opens a stream: b drops the first one.
  TestNode second(1);
  second.transport.set_peer(2, b.address());
  second.transport.send(msg(1, 2, 1));
  ASSERT_TRUE(b.inbox.wait_for_count(2));
  EXPECT_TRUE(eventually([&] {
    first.transport.send(msg(1, 2, 2));
    return first.transport.stats().connects >= 2;
  })) << "the first sender's stream was never closed";
}

// set_peer with a new address moves the stream to the new address.
TEST(TcpTransport, SetPeerWithNewAddressReconnects) {
  TestNode a(1);
  TestNode old_b(2);
  TestNode new_b(2);
  a.transport.set_peer(2, old_b.address());
  a.transport.send(msg(1, 2, 1));
  ASSERT_TRUE(old_b.inbox.wait_for_count(1));
  a.transport.set_peer(2, new_b.address());
  a.transport.send(msg(1, 2, 2));
  ASSERT_TRUE(new_b.inbox.wait_for_count(1));
  EXPECT_EQ(new_b.inbox.messages()[0].context, 2u);
  EXPECT_EQ(old_b.inbox.size(), 1u);
}

// remove_peer: later messages to it are dropped, not queued.
TEST(TcpTransport, RemovedPeerGetsNothing) {
  TestNode a(1);
  TestNode b(2);
  a.transport.set_peer(2, b.address());
  a.transport.send(msg(1, 2, 1));
  ASSERT_TRUE(b.inbox.wait_for_count(1));
  a.transport.remove_peer(2);
  const uint64_t dropped = a.transport.stats().messages_dropped;
  a.transport.send(msg(1, 2, 2));
  EXPECT_EQ(a.transport.stats().messages_dropped, dropped + 1);
  a.transport.send(msg(1, 9, 3));  // never a peer
  EXPECT_EQ(a.transport.stats().messages_dropped, dropped + 2);
}

// The hello names the intended receiver: a stale address now used by another
// node must not get (and act on) messages meant for someone else.
TEST(TcpTransport, StreamForAnotherNodeIsRejected) {
  TestNode a(1);
  TestNode b(2);
  const auto start = Clock::now();
  a.transport.set_peer(3, b.address());  // node 3's address is now node 2's
  a.transport.send(msg(1, 3, 1));
  EXPECT_TRUE(eventually([&] { return b.transport.stats().streams_rejected >= 1; }));
  EXPECT_EQ(b.inbox.size(), 0u);
  // The sender backs off (50 + 100 ms before its third stream) rather than
  // reconnecting in a loop to a node that keeps closing the stream.
  ASSERT_TRUE(eventually([&] { return a.transport.stats().connects >= 3; }));
  EXPECT_GE(Clock::now() - start, 150ms);
  EXPECT_EQ(b.inbox.size(), 0u);
}

// Bytes that are not our protocol (an HTTP request at the raft port) close the stream.
TEST(TcpTransport, GarbageStreamIsRejected) {
  TestNode b(2);
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(b.transport.listen_port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  const std::string req = "GET /status HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::write(fd, req.data(), req.size()), static_cast<ssize_t>(req.size()));
  EXPECT_TRUE(eventually([&] { return b.transport.stats().streams_rejected >= 1; }));
  char c = 0;
  EXPECT_EQ(::read(fd, &c, 1), 0) << "the transport should close the stream";
  ::close(fd);
  EXPECT_EQ(b.inbox.size(), 0u);
}

// Streams leave from the host of the node's own raft address, so a firewall
// rule on that address (how partition tests cut a node off) covers what it
// sends too, not only what it receives.
TEST(TcpTransport, OutboundStreamsLeaveFromTheRaftAddressHost) {
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  ASSERT_EQ(::inet_pton(AF_INET, "127.0.0.8", &addr.sin_addr), 1);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(listener, 4), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);

  TcpTransport a(1, "127.0.0.7:0");
  ASSERT_TRUE(a.listen().is_ok());
  Inbox unused;
  a.start(unused.handler());
  a.set_peer(2, "127.0.0.8:" + std::to_string(ntohs(addr.sin_port)));
  a.send(msg(1, 2, 1));

  sockaddr_in from{};
  socklen_t from_len = sizeof(from);
  const int conn = ::accept(listener, reinterpret_cast<sockaddr*>(&from), &from_len);
  ASSERT_GE(conn, 0);
  char text[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &from.sin_addr, text, sizeof(text));
  EXPECT_STREQ(text, "127.0.0.7");
  a.stop();
  ::close(conn);
  ::close(listener);
}

// stop() is prompt and idempotent even with a peer stuck in backoff, and sends afterwards are dropped.
TEST(TcpTransport, StopIsPromptAndFinal) {
  TestNode a(1);
  a.transport.set_peer(3, "127.0.0.1:" + std::to_string(dead_port()));
  a.transport.send(msg(1, 3, 1));
  EXPECT_TRUE(eventually([&] { return a.transport.stats().connect_failures >= 1; }));
  const auto start = Clock::now();
  a.transport.stop();
  a.transport.stop();
  EXPECT_LT(Clock::now() - start, 1s);
  a.transport.send(msg(1, 3, 2));
  a.transport.set_peer(4, "127.0.0.1:1");
}

}  // namespace
}  // namespace ckv::transport
