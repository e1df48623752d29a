// OpenSSL contexts and the verified client name (see tls_context.h).
#include "http/tls_context.h"

#include <openssl/err.h>
#include <openssl/x509.h>

namespace ckv::http {

namespace asio = boost::asio;

Result<asio::ssl::context> make_tls_context(const tls::TlsMaterial& m,
                                            asio::ssl::context::method method) {
  const bool server = method == asio::ssl::context::tls_server;
  asio::ssl::context ctx(method);
  SSL_CTX* native = ctx.native_handle();
  boost::system::error_code ec;
  auto failed = [&](const std::string& what) {
    return Status(StatusCode::kInvalid, std::string(server ? "TLS server" : "TLS client") +
                                            " setup: " + what + ": " + ec.message());
  };
  if (SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION) != 1) {
    return Status(StatusCode::kInvalid, "OpenSSL refuses TLS 1.2 as the minimum version");
  }
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  ctx.use_certificate_chain(asio::buffer(m.cert_chain_pem), ec);
  if (ec) return failed("the certificate in -cert-file " + m.cert_file);
  ctx.use_private_key(asio::buffer(m.private_key_pem), asio::ssl::context::pem, ec);
  if (ec) return failed("the key in -key-file");
  if (!m.trusted_ca_pem.empty()) {
    ctx.add_certificate_authority(asio::buffer(m.trusted_ca_pem), ec);
    if (ec) return failed("the CA in -trusted-ca-file");
  } else if (!server) {
    ctx.set_default_verify_paths(ec);
    if (ec) return failed("the system's CA store");
  }
  if (server) {
    if (m.verify_clients) {
      ctx.set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert, ec);
      if (ec) return failed("client certificate verification");
      // OpenSSL refuses to resume a session whose client was verified
      // unless the context names itself (SSL_CTX_set_session_id_context(3)).
      static constexpr unsigned char kSessionContext[] = "consensuskv-api";
      SSL_CTX_set_session_id_context(native, kSessionContext, sizeof kSessionContext - 1);
    }
  } else {
    ctx.set_verify_mode(asio::ssl::verify_peer, ec);
    if (ec) return failed("server certificate verification");
  }
  return ctx;
}

std::string verified_client_cn(SSL* ssl) {
  if (SSL_get_verify_result(ssl) != X509_V_OK) return {};
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr) return {};
  X509_NAME* subject = X509_get_subject_name(cert);
  const int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (at < 0 || X509_NAME_get_index_by_NID(subject, NID_commonName, at) >= 0) return {};
  unsigned char* utf8 = nullptr;
  const int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at)));
  if (n < 0) {
    ERR_clear_error();
    return {};
  }
  std::string cn(reinterpret_cast<const char*>(utf8), static_cast<size_t>(n));
  OPENSSL_free(utf8);
  return cn;
}

}  // namespace ckv::http
