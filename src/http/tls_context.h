// OpenSSL contexts for the client listeners (the HTTP API and the gRPC front end) and for this node's calls to other members' APIs, from the checked TLS files.
//
// Asio's SSL headers are heavy: only the servers' own .cc files include this.
#pragma once

#include <string>

#include <boost/asio/ssl/context.hpp>
#include <openssl/ssl.h>

#include "common/status.h"
#include "tls/tls_files.h"

namespace ckv::http {

// An OpenSSL context from checked PEM text (tls/tls_files.h). Both sides:
// TLS 1.2 or later (etcd's minimum too), no renegotiation (a client could
// make the server repeat its costliest step at will), no compression
// (CRIME), and our certificate (a server's, and the client certificate
// this node presents to other members, as etcd does with its own). Server:
// client certificates required and verified when verify_clients. Client:
// the members' certificates verified against the trusted CA, else the
// system store.
Result<boost::asio::ssl::context> make_tls_context(const tls::TlsMaterial& m,
                                                   boost::asio::ssl::context::method method);

// The subject CN of the client certificate the handshake verified (etcd's
// user for -client-cert-auth); empty without one, or when the subject has
// several CNs (which one names the user would be a guess).
std::string verified_client_cn(SSL* ssl);

}  // namespace ckv::http
