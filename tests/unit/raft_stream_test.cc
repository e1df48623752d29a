// Unit tests for src/transport/raft_stream.h: plain and TLS raft streams behave alike (frames both ways, gathered writes, EOF), and TLS refuses what it must.
#include "transport/raft_stream.h"

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <gtest/gtest.h>

#include "support/test_certs.h"
#include "transport/message_codec.h"

namespace ckv::transport {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;
using tls::testing::Identity;
using tls::testing::make_identity;
using tls::testing::pem_of;

// Bounds each test's event loop; the tests finish in milliseconds.
constexpr auto kDeadline = std::chrono::seconds(10);

std::shared_ptr<PeerTlsContext> context(const Identity& leaf, const Identity& trusted_ca) {
  tls::PeerTlsMaterial m;
  m.cert_chain_pem = pem_of(leaf.cert.get());
  m.private_key_pem = pem_of(leaf.key.get());
  m.trusted_ca_pem = pem_of(trusted_ca.cert.get());
  auto c = PeerTlsContext::create(m);
  EXPECT_TRUE(c.is_ok()) << c.status().to_string();
  return c.is_ok() ? c.value() : nullptr;
}

std::string framed(const std::string& payload) {
  std::string out;
  EXPECT_TRUE(append_frame(payload, out).is_ok());
  return out;
}

// One dialer and one acceptor stream over loopback TCP; each side's script
// runs as a coroutine on one io_context.
class StreamPair {
 public:
  StreamPair(std::shared_ptr<PeerTlsContext> dialer_tls, std::shared_ptr<PeerTlsContext> acceptor_tls)
      : acceptor_(io_, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        dialer(io_, std::move(dialer_tls)),
        accepted(io_, std::move(acceptor_tls)) {}

  using Script = std::function<asio::awaitable<void>(RaftStream&)>;

  // Connects, then runs both scripts to completion (or the deadline).
  void run(Script dial_side, Script accept_side) {
    asio::co_spawn(io_, [&]() -> asio::awaitable<void> {
      error_code ec;
      co_await acceptor_.async_accept(accepted.socket(), asio::redirect_error(asio::use_awaitable, ec));
      EXPECT_FALSE(ec) << ec.message();
      co_await accept_side(accepted);
      ++finished_;
    }, asio::detached);
    asio::co_spawn(io_, [&]() -> asio::awaitable<void> {
      error_code ec;
      co_await dialer.socket().async_connect(acceptor_.local_endpoint(), asio::redirect_error(asio::use_awaitable, ec));
      EXPECT_FALSE(ec) << ec.message();
      co_await dial_side(dialer);
      ++finished_;
    }, asio::detached);
    io_.run_for(kDeadline);
    EXPECT_EQ(finished_, 2) << "a side did not finish before the deadline";
  }

 private:
  asio::io_context io_;
  asio::ip::tcp::acceptor acceptor_;
  int finished_ = 0;

 public:
  RaftStream dialer;
  RaftStream accepted;
};

// The same exchange over either kind of stream: a gathered write of three
// frames (one of 1 MiB: several TLS records), an answer the other way, then
// EOF seen as "closed".
void exchange_frames(StreamPair& p) {
  const std::string big(size_t{1} << 20, 'x');
  std::vector<std::string> got;
  std::optional<Status> end;
  std::string answer;
  p.run(
      [&](RaftStream& s) -> asio::awaitable<void> {
        error_code ec;
        EXPECT_FALSE(co_await s.handshake(RaftStream::Role::kDialer));
        const std::string a = framed("one"), b = framed(big), c = framed("three");
        std::vector<asio::const_buffer> out{asio::buffer(a), asio::buffer(b), asio::buffer(c)};
        co_await s.write(out, ec);
        EXPECT_FALSE(ec) << ec.message();
        FrameReader reader(kMaxFrameBytes);
        auto r = co_await read_frame(s, reader);
        EXPECT_TRUE(r.is_ok()) << r.status().to_string();
        if (r.is_ok()) answer = std::string(r.value());
        s.close();
      },
      [&](RaftStream& s) -> asio::awaitable<void> {
        EXPECT_FALSE(co_await s.handshake(RaftStream::Role::kAcceptor));
        FrameReader reader(kMaxFrameBytes);
        for (int i = 0; i < 3; ++i) {
          auto r = co_await read_frame(s, reader);
          if (!r.is_ok()) break;
          got.emplace_back(r.value());
        }
        error_code ec;
        const std::string reply = framed("ack");
        std::vector<asio::const_buffer> out{asio::buffer(reply)};
        co_await s.write(out, ec);
        EXPECT_FALSE(ec) << ec.message();
        auto r = co_await read_frame(s, reader);
        end = r.status();
      });
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0], "one");
  EXPECT_EQ(got[1], big);
  EXPECT_EQ(got[2], "three");
  EXPECT_EQ(answer, "ack");
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(end->code(), StatusCode::kUnavailable);
  EXPECT_EQ(end->message(), kStreamClosedMessage);
}

TEST(RaftStream, PlainTcpCarriesFramesBothWays) {
  StreamPair p(nullptr, nullptr);
  exchange_frames(p);
  EXPECT_FALSE(p.dialer.is_tls());
  EXPECT_EQ(p.accepted.peer_certificate(), nullptr);
}

TEST(RaftStream, MutualTlsCarriesTheSameFramesAndShowsEachSideTheOthersCertificate) {
  Identity ca = make_identity("ca", nullptr, true);
  Identity a = make_identity("member-a", &ca, false);
  Identity b = make_identity("member-b", &ca, false);
  StreamPair p(context(a, ca), context(b, ca));
  exchange_frames(p);
  ASSERT_TRUE(p.dialer.is_tls());
  ASSERT_NE(p.dialer.peer_certificate(), nullptr);
  ASSERT_NE(p.accepted.peer_certificate(), nullptr);
  EXPECT_EQ(X509_cmp(p.dialer.peer_certificate(), b.cert.get()), 0);
  EXPECT_EQ(X509_cmp(p.accepted.peer_certificate(), a.cert.get()), 0);
}

// Runs both handshakes; returns the dialer's and the acceptor's errors.
std::pair<error_code, error_code> handshakes(StreamPair& p, const std::string& dialer_sends_first = "") {
  error_code dial_ec, accept_ec;
  p.run(
      [&](RaftStream& s) -> asio::awaitable<void> {
        if (!dialer_sends_first.empty()) {
          // A plaintext dialer: says its hello over TCP, then waits to be closed.
          co_await asio::async_write(s.socket(), asio::buffer(dialer_sends_first),
                                     asio::redirect_error(asio::use_awaitable, dial_ec));
          char c;
          co_await s.socket().async_read_some(asio::buffer(&c, 1), asio::redirect_error(asio::use_awaitable, dial_ec));
          co_return;
        }
        dial_ec = co_await s.handshake(RaftStream::Role::kDialer);
        if (!dial_ec) {
          // TLS 1.3: the client may finish before the server has refused its certificate.
          FrameReader reader(kMaxFrameBytes);
          auto r = co_await read_frame(s, reader);
          EXPECT_FALSE(r.is_ok());
        }
      },
      [&](RaftStream& s) -> asio::awaitable<void> {
        accept_ec = co_await s.handshake(RaftStream::Role::kAcceptor);
        s.close();
      });
  return {dial_ec, accept_ec};
}

TEST(RaftStream, TlsRefusesACertificateFromAnotherCa) {
  Identity ca = make_identity("ca", nullptr, true);
  Identity other_ca = make_identity("other-ca", nullptr, true);
  Identity member = make_identity("member", &ca, false);
  Identity stranger = make_identity("stranger", &other_ca, false);
  {
    // The stranger trusts our CA (so it would accept the acceptor), but its own certificate is from another.
    StreamPair p(context(stranger, ca), context(member, ca));
    auto [dial_ec, accept_ec] = handshakes(p);
    EXPECT_TRUE(accept_ec) << "the acceptor took a certificate from another CA";
    EXPECT_NE(accept_ec.message().find("certificate verify failed"), std::string::npos) << accept_ec.message();
    EXPECT_EQ(p.accepted.peer_certificate(), nullptr);
  }
  {
    // The other way round: the dialer refuses an acceptor it cannot verify.
    StreamPair p(context(member, ca), context(stranger, ca));
    auto [dial_ec, accept_ec] = handshakes(p);
    EXPECT_TRUE(dial_ec) << "the dialer took a certificate from another CA";
    EXPECT_NE(dial_ec.message().find("certificate verify failed"), std::string::npos) << dial_ec.message();
    EXPECT_EQ(p.dialer.peer_certificate(), nullptr);
  }
}

TEST(RaftStream, TlsAcceptorRefusesPlaintext) {
  Identity ca = make_identity("ca", nullptr, true);
  Identity member = make_identity("member", &ca, false);
  StreamPair p(nullptr, context(member, ca));
  auto [dial_ec, accept_ec] = handshakes(p, framed("a plaintext hello"));
  EXPECT_TRUE(accept_ec);
}

TEST(RaftStream, AReadHookCanRefuseTheNextRead) {
  StreamPair p(nullptr, nullptr);
  std::optional<Status> refused;
  std::vector<size_t> reads;
  p.run(
      [&](RaftStream& s) -> asio::awaitable<void> {
        error_code ec;
        const std::string a = framed("first");
        std::vector<asio::const_buffer> out{asio::buffer(a)};
        co_await s.write(out, ec);
        FrameReader reader(kMaxFrameBytes);
        (void)co_await read_frame(s, reader);  // until the acceptor closes
      },
      [&](RaftStream& s) -> asio::awaitable<void> {
        FrameReader reader(kMaxFrameBytes);
        ReadHooks hooks;
        int allowed = 1;
        hooks.before_read = [&](size_t) { return allowed-- > 0; };
        hooks.after_read = [&](size_t got) { reads.push_back(got); };
        auto r = co_await read_frame(s, reader, &hooks);
        EXPECT_TRUE(r.is_ok());
        if (r.is_ok()) {
          EXPECT_EQ(r.value(), "first");
        }
        r = co_await read_frame(s, reader, &hooks);
        refused = r.status();
        s.close();
      });
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->message(), kReadRefusedMessage);
  ASSERT_EQ(reads.size(), 1u);
  EXPECT_EQ(reads[0], framed("first").size());
}

TEST(PeerTlsContext, RefusesAKeyThatIsNotPem) {
  Identity ca = make_identity("ca", nullptr, true);
  tls::PeerTlsMaterial m;
  m.cert_chain_pem = pem_of(ca.cert.get());
  m.private_key_pem = "not a key";
  m.trusted_ca_pem = pem_of(ca.cert.get());
  auto c = PeerTlsContext::create(m);
  ASSERT_FALSE(c.is_ok());
  EXPECT_NE(c.status().message().find("private key"), std::string::npos) << c.status().message();
}

}  // namespace
}  // namespace ckv::transport
