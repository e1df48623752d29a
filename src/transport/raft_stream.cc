// Plain and TLS raft streams over Asio, and the frame read loop (see raft_stream.h).
#include "transport/raft_stream.h"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>

namespace ckv::transport {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using boost::system::error_code;

PeerTlsContext::PeerTlsContext() : ctx_(ssl::context::tls) {}

Result<std::shared_ptr<PeerTlsContext>> PeerTlsContext::create(const tls::PeerTlsMaterial& m) {
  std::shared_ptr<PeerTlsContext> c(new PeerTlsContext());
  ssl::context& ctx = c->ctx_;
  error_code ec;
  auto fail = [&](const char* what) {
    return Status(StatusCode::kCorrupt, std::string("peer TLS: ") + what + ": " + ec.message());
  };
  // TLS 1.2 is the oldest version without known protocol breaks; no compression, no renegotiation.
  if (SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION) != 1) {
    ERR_clear_error();
    return Status(StatusCode::kCorrupt, "peer TLS: cannot require TLS 1.2");
  }
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_compression |
                      SSL_OP_NO_RENEGOTIATION,
                  ec);
  if (ec) return fail("options");
  ctx.use_certificate_chain(asio::buffer(m.cert_chain_pem), ec);
  if (ec) return fail("the certificate chain");
  ctx.use_private_key(asio::buffer(m.private_key_pem), ssl::context::pem, ec);
  if (ec) return fail("the private key");
  ctx.add_certificate_authority(asio::buffer(m.trusted_ca_pem), ec);
  if (ec) return fail("the trusted CA");
  // Mutual in both roles: a dialer verifies the acceptor and the acceptor
  // requires and verifies the dialer's certificate.
  ctx.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert, ec);
  if (ec) return fail("verify mode");
  c->allowed_cn_ = m.allowed_cn;
  return c;
}

RaftStream::RaftStream(asio::io_context& io, std::shared_ptr<PeerTlsContext> tls)
    : socket_(io), tls_context_(std::move(tls)) {
  if (tls_context_) tls_.emplace(socket_, tls_context_->native());
}

asio::awaitable<error_code> RaftStream::handshake(Role role) {
  error_code ec;
  if (!tls_) co_return ec;
  co_await tls_->async_handshake(
      role == Role::kDialer ? ssl::stream_base::client : ssl::stream_base::server,
      asio::redirect_error(asio::use_awaitable, ec));
  co_return ec;
}

X509* RaftStream::peer_certificate() {
  if (!tls_) return nullptr;
  SSL* handle = tls_->native_handle();
  if (SSL_get_verify_result(handle) != X509_V_OK) return nullptr;
  return SSL_get0_peer_certificate(handle);
}

asio::awaitable<size_t> RaftStream::read_some(asio::mutable_buffer b, error_code& ec) {
  if (tls_) co_return co_await tls_->async_read_some(b, asio::redirect_error(asio::use_awaitable, ec));
  co_return co_await socket_.async_read_some(b, asio::redirect_error(asio::use_awaitable, ec));
}

asio::awaitable<void> RaftStream::write(std::vector<asio::const_buffer> buffers, error_code& ec) {
  if (!tls_) {
    co_await asio::async_write(socket_, buffers, asio::redirect_error(asio::use_awaitable, ec));
    co_return;
  }
  if (buffers.size() == 1) {
    co_await asio::async_write(*tls_, buffers.front(), asio::redirect_error(asio::use_awaitable, ec));
    co_return;
  }
  gather_.clear();
  for (const asio::const_buffer& b : buffers) gather_.append(static_cast<const char*>(b.data()), b.size());
  co_await asio::async_write(*tls_, asio::buffer(gather_), asio::redirect_error(asio::use_awaitable, ec));
  // A batch can be megabytes: do not keep the high-water mark per stream.
  if (gather_.capacity() > FrameReader::kShrinkAboveBytes) std::string().swap(gather_);
}

void RaftStream::close() {
  error_code ignored;
  socket_.close(ignored);
}

asio::awaitable<Result<std::string_view>> read_frame(RaftStream& stream, FrameReader& reader,
                                                     const ReadHooks* hooks) {
  for (;;) {
    auto frame = reader.next();
    if (!frame.is_ok()) co_return frame.status();
    if (frame.value()) co_return *frame.value();
    const size_t want = reader.next_read_bytes();
    if (hooks != nullptr && hooks->before_read && !hooks->before_read(want)) {
      co_return Status(StatusCode::kUnavailable, kReadRefusedMessage);
    }
    char* p = reader.prepare(want);
    error_code ec;
    const size_t n = co_await stream.read_some(asio::buffer(p, want), ec);
    reader.commit(n);
    if (hooks != nullptr && hooks->after_read) hooks->after_read(n);
    // A TLS peer that closes TCP without close_notify reads as stream_truncated: closed all the same.
    if (ec == asio::error::eof || ec == ssl::error::stream_truncated) {
      co_return Status(StatusCode::kUnavailable, kStreamClosedMessage);
    }
    if (ec) co_return Status(StatusCode::kUnavailable, ec.message());
  }
}

}  // namespace ckv::transport
