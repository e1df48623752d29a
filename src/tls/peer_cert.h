// Which member a peer's TLS certificate names: the check that ties a raft stream's hello to the certificate under it.
//
// The rule (docs/security.md, "How a certificate names a member"): the
// certificate, already verified against -peer-trusted-ca-file by the TLS
// handshake, belongs to the member whose raft address has host H when one
// of its subject alternative names is H: an IP SAN equal to H when H is an
// IP address, a DNS SAN matching H (a leading "*." wildcard as usual) when H
// is a name. The subject CN is not read for this (as in Go and browsers);
// with -peer-cert-allowed-cn the CN must also equal that value (etcd's
// meaning: every member's certificate carries the same CN).
//
// Members that share a host share an identity as far as certificates go:
// give members distinct hosts (or distinct DNS names) for the check to tell
// them apart.
//
// Pure functions of their arguments; thread-safe.
#pragma once

#include <string>

#include <openssl/x509.h>

#include "common/status.h"

namespace ckv::tls {

// ok, or kInvalid with why not (naming the
// certificate's CN and SANs and the host wanted). host is the host part of
// a raft address (no brackets, no port); a null cert is refused.
Status check_peer_certificate(X509* cert, const std::string& host, const std::string& allowed_cn);

// "CN=n1, SAN IP:127.0.0.1, DNS:localhost": for log lines.
std::string describe_certificate(X509* cert);

}  // namespace ckv::tls
