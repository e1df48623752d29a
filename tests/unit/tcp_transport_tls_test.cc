// Unit tests for peer TLS in src/transport/tcp_transport.h: mutual TLS between transports, and the refusals (plaintext, another CA, a certificate of another member).
#include <chrono>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support/test_certs.h"
#include "support/transport_test_support.h"
#include "transport/tcp_transport.h"

namespace ckv::transport {
namespace {

using namespace std::chrono_literals;
using tls::testing::Identity;
using tls::testing::make_identity;
using tls::testing::pem_of;
using testing_support::eventually;
using testing_support::msg;
using testing_support::TestNode;

TcpTransportOptions tls_options(const Identity& leaf, const Identity& ca, const std::string& allowed_cn = "") {
  TcpTransportOptions o;
  tls::PeerTlsMaterial m;
  m.cert_chain_pem = pem_of(leaf.cert.get());
  m.private_key_pem = pem_of(leaf.key.get());
  m.trusted_ca_pem = pem_of(ca.cert.get());
  m.allowed_cn = allowed_cn;
  o.peer_tls = m;
  o.hello_timeout_ms = 500;
  return o;
}

// Sends from `from` to `to` until `to` has received one more message than before, or the deadline.
bool delivered(TestNode& from, TestNode& to) {
  const size_t before = to.inbox.size();
  uint64_t seq = 0;
  return eventually([&] {
    from.transport.send(msg(from.id, to.id, ++seq));
    return to.inbox.size() > before;
  });
}

// Sends from `from` until `counter` (a stat of `watcher`) reaches at least n; then `to` must have received nothing.
void expect_refused(TestNode& from, TestNode& to, TestNode& watcher,
                    const std::function<uint64_t(const TcpTransportStats&)>& counter, uint64_t n = 1) {
  uint64_t seq = 0;
  ASSERT_TRUE(eventually([&] {
    from.transport.send(msg(from.id, to.id, ++seq));
    return counter(watcher.transport.stats()) >= n;
  })) << "no refusal counted";
  EXPECT_EQ(to.inbox.size(), 0u);
}

void pair_up(TestNode& a, TestNode& b) {
  a.transport.set_peer(b.id, b.address(), "");
  b.transport.set_peer(a.id, a.address(), "");
}

class PeerTlsTransport : public ::testing::Test {
 protected:
  Identity ca_ = make_identity("ca", nullptr, true);
  Identity other_ca_ = make_identity("other-ca", nullptr, true);
  Identity member_a_ = make_identity("a", &ca_, false);
  Identity member_b_ = make_identity("b", &ca_, false);
};

TEST_F(PeerTlsTransport, MutualTlsDeliversBothWays) {
  TestNode a(1, 0, tls_options(member_a_, ca_));
  TestNode b(2, 0, tls_options(member_b_, ca_));
  pair_up(a, b);
  EXPECT_TRUE(delivered(a, b));
  EXPECT_TRUE(delivered(b, a));
  EXPECT_EQ(a.transport.stats().tls_handshakes_failed, 0u);
  EXPECT_EQ(b.transport.stats().certificates_refused, 0u);
}

TEST_F(PeerTlsTransport, PlaintextPeerIsRefusedBothWays) {
  TestNode secure(1, 0, tls_options(member_a_, ca_));
  TestNode plain(2);
  pair_up(secure, plain);
  // plain -> secure: its plaintext hello is no TLS handshake.
  expect_refused(plain, secure, secure, [](const TcpTransportStats& s) { return s.tls_handshakes_failed; });
  // secure -> plain: plain reads a TLS ClientHello where a hello should be.
  expect_refused(secure, plain, plain, [](const TcpTransportStats& s) { return s.streams_rejected; });
}

TEST_F(PeerTlsTransport, CertificateFromAnotherCaIsRefused) {
  Identity stranger = make_identity("stranger", &other_ca_, false);
  TestNode a(1, 0, tls_options(member_a_, ca_));
  // Trusts our CA (so it would verify a), but presents a certificate a cannot verify.
  TestNode intruder(2, 0, tls_options(stranger, ca_));
  pair_up(a, intruder);
  expect_refused(intruder, a, a, [](const TcpTransportStats& s) { return s.tls_handshakes_failed; });
}

TEST_F(PeerTlsTransport, CertificateOfAnotherHostIsRefusedOnBothEnds) {
  // A valid certificate from the trusted CA, but for host 127.0.0.2: it is
  // not the certificate of member 1, registered at 127.0.0.1.
  Identity elsewhere = make_identity("a", &ca_, false, -60, 3600, "IP:127.0.0.2");
  TestNode a(1, 0, tls_options(elsewhere, ca_));
  TestNode b(2, 0, tls_options(member_b_, ca_));
  pair_up(a, b);
  // The acceptor b refuses a's stream once its hello says it is member 1 ...
  expect_refused(a, b, b, [](const TcpTransportStats& s) { return s.certificates_refused; });
  // ... and b, dialling a, refuses a's certificate before saying hello.
  expect_refused(b, a, b, [](const TcpTransportStats& s) { return s.certificates_refused; }, 2);
}

TEST_F(PeerTlsTransport, AllowedCnIsEnforced) {
  Identity right = make_identity("raft-peer", &ca_, false);
  Identity wrong = make_identity("someone", &ca_, false);
  TestNode a(1, 0, tls_options(wrong, ca_, "raft-peer"));
  TestNode b(2, 0, tls_options(right, ca_, "raft-peer"));
  pair_up(a, b);
  expect_refused(a, b, b, [](const TcpTransportStats& s) { return s.certificates_refused; });
}

TEST_F(PeerTlsTransport, ProbeOverTlsChecksTheHost) {
  TestNode b(2, 0, tls_options(member_b_, ca_));
  b.transport.set_local_identity(PeerIdentity{2, "bee", b.address(), "", std::string(32, 'b')});
  TestNode a(1, 0, tls_options(member_a_, ca_));
  std::promise<Result<PeerIdentity>> p;
  a.transport.probe(b.address(), 2000, [&](Result<PeerIdentity> r) { p.set_value(std::move(r)); });
  auto who = p.get_future().get();
  ASSERT_TRUE(who.is_ok()) << who.status().to_string();
  EXPECT_EQ(who->name, "bee");
  // "localhost" is a SAN of b's certificate; 127.0.0.1 dialled as "localhost" passes, other names do not.
  TestNode c(3, 0, tls_options(make_identity("c", &ca_, false, -60, 3600, "DNS:c.example"), ca_));
  std::promise<Result<PeerIdentity>> q;
  a.transport.probe(c.address(), 2000, [&](Result<PeerIdentity> r) { q.set_value(std::move(r)); });
  auto refused = q.get_future().get();
  ASSERT_FALSE(refused.is_ok());
  EXPECT_NE(refused.status().message().find("does not name host 127.0.0.1"), std::string::npos)
      << refused.status().message();
}

TEST_F(PeerTlsTransport, HandshakeThatNeverStartsIsClosedAtTheHelloTimeout) {
  TestNode a(1, 0, tls_options(member_a_, ca_));
  // Connects and never starts the handshake.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(a.transport.listen_port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  EXPECT_TRUE(eventually([&] { return a.transport.stats().hello_timeouts >= 1; }));
  ::close(fd);
}

// Connections stuck before or in their handshake hold pending-hello slots,
// so at the cap the oldest is closed and a member still gets through.
TEST_F(PeerTlsTransport, StalledHandshakesCannotExhaustTheConnectionLimit) {
  TcpTransportOptions o = tls_options(member_b_, ca_);
  o.max_inbound_connections = 16;
  o.max_pending_hello_connections = 4;
  o.hello_timeout_ms = 60000;  // only the caps can free the slots here
  TestNode b(2, 0, o);
  TestNode a(1, 0, tls_options(member_a_, ca_));
  std::vector<int> idle;
  for (int i = 0; i < 40; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(b.transport.listen_port());
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    // Half a TLS record header: a handshake that starts and never finishes.
    ASSERT_EQ(::send(fd, "\x16\x03\x01", 3, MSG_NOSIGNAL), 3);
    idle.push_back(fd);
  }
  EXPECT_TRUE(eventually([&] { return b.transport.stats().connections_refused >= 36; }));
  pair_up(a, b);
  EXPECT_TRUE(delivered(a, b)) << "a member could not get through the stalled handshakes";
  for (int fd : idle) ::close(fd);
}

}  // namespace
}  // namespace ckv::transport
