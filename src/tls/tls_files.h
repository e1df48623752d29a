// TLS settings, checked once at start and held as PEM text: the client listeners' (etcd's -cert-file, -key-file, -trusted-ca-file, -client-cert-auth) and the raft port's (-peer-*).
//
// kvnode reads and checks the files once, before it serves anything, and
// both client listeners (the HTTP API in http/server.cc, the gRPC port in
// etcd/grpc_server.cc) and the forwarding client build their TLS contexts
// from the same bytes: what was checked is what is used, even if a file
// changes afterwards (certificates are not reloaded; restart to rotate them,
// docs/operations.md).
//
// Meaning, as etcd 3.4's (checked against etcd 3.4.23):
//  - cert_file and key_file both or neither: with them, both client
//    listeners speak only TLS (1.2 or later).
//  - trusted_ca_file: the CA that client certificates must chain to. As in
//    etcd, giving it turns client-certificate verification on even without
//    client_cert_auth; the forwarding client also verifies other members'
//    certificates against it (else against the system store).
//  - client_cert_auth: require a client certificate; needs trusted_ca_file.
//
// No OpenSSL types here: the header is cheap to include (kvnode.cc, server.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace ckv::tls {

// A certificate chain, key or CA bundle is a few KiB; a file over this is
// not one (and is not read into memory whole).
inline constexpr uint64_t kMaxPemFileBytes = uint64_t{1} << 20;

struct TlsFlags {
  std::string cert_file;
  std::string key_file;
  std::string trusted_ca_file;
  bool client_cert_auth = false;
};

struct TlsMaterial {
  std::string cert_file;       // for messages
  std::string cert_chain_pem;  // leaf first, then intermediates
  std::string private_key_pem;
  std::string trusted_ca_pem;  // empty: none given (client side: the system store)
  // Require a certificate from every client and verify it against
  // trusted_ca_pem (client_cert_auth, or trusted_ca_file given: etcd's rule).
  bool verify_clients = false;
  std::string leaf_subject;  // the certificate's subject, for the start log
  // Not fatal, worth a log line: an expired or not-yet-valid certificate.
  std::vector<std::string> warnings;
};

// Checks the flags and files. nullopt: no TLS (no flag given). kInvalid for
// a combination that makes no sense (a usage error), kIo for a file that
// cannot be read, kCorrupt for one that does not parse or a key that does
// not match the certificate; the message names the flag and the file.
Result<std::optional<TlsMaterial>> load_client_tls(const TlsFlags& flags);

// Peer TLS (etcd's -peer-cert-file, -peer-key-file, -peer-trusted-ca-file,
// -peer-cert-allowed-cn, -peer-client-cert-auth): every raft connection,
// dialled or accepted, is mutual TLS 1.2+ against the trusted CA, so the
// three files go together (docs/security.md, "Peer TLS"). etcd's
// -peer-client-cert-auth is accepted and always true here.
struct PeerTlsFlags {
  std::string cert_file;
  std::string key_file;
  std::string trusted_ca_file;
  std::string allowed_cn;  // empty: any CN
  bool client_cert_auth = false;
  bool client_cert_auth_given = false;  // the flag was on the command line
};

struct PeerTlsMaterial {
  std::string cert_chain_pem;  // leaf first, then intermediates
  std::string private_key_pem;
  std::string trusted_ca_pem;
  std::string allowed_cn;      // a peer's certificate must have this CN (empty: any)
  std::string leaf_subject;    // for the start log
  std::vector<std::string> warnings;
};

// nullopt: no peer TLS flag given (plaintext raft). kInvalid for a usage
// error (not all three files, -peer-cert-allowed-cn alone,
// -peer-client-cert-auth=false); kIo / kCorrupt as load_client_tls, and
// kCorrupt for a certificate outside its validity period (peers would
// refuse it). A certificate that does not verify against the trusted CA is
// a warning (a CA rotation in progress).
Result<std::optional<PeerTlsMaterial>> load_peer_tls(const PeerTlsFlags& flags);

}  // namespace ckv::tls
