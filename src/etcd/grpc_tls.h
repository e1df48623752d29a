// grpc++ credentials from the checked client TLS files (tls/tls_files.h): the gRPC port's, and those a member uses to call another member's gRPC port.
//
// Every member of a cluster serves TLS or none does (docs/api.md, "TLS on
// the client listeners"), so a node calling another member's gRPC API (a
// follower forwarding a KV write or a membership change to the leader)
// uses member_channel_credentials() with its own TlsMaterial: TLS when it
// serves TLS, verifying the member's certificate against -trusted-ca-file
// (else the system store, as grpc's default roots) and presenting its own
// certificate, as etcd does for its own client connections.
//
// Includes grpc++: for src/etcd/*.cc only (kvnode.cc and the HTTP library
// stay free of it).
#pragma once

#include <memory>
#include <optional>

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include "tls/tls_files.h"

namespace ckv::etcd {

// Plaintext without tls; else TLS (grpc's minimum is TLS 1.2) with our
// certificate, requiring and verifying client certificates when
// tls->verify_clients.
std::shared_ptr<grpc::ServerCredentials> server_credentials(
    const std::optional<tls::TlsMaterial>& tls);

// For channels to other members' gRPC addresses (see above).
std::shared_ptr<grpc::ChannelCredentials> member_channel_credentials(
    const std::optional<tls::TlsMaterial>& tls);

}  // namespace ckv::etcd
