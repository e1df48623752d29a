// etcd's Lease requests and responses as plain structs (rpc.proto's LeaseGrant/LeaseRevoke), for the log and the request layer.
#pragma once

#include <cstdint>

#include "mvcc/errors.h"
#include "mvcc/types.h"

namespace ckv::lease {

// No lease (a key without one carries lease 0, as etcd's NoLease).
inline constexpr int64_t kNoLease = 0;
// etcd's lease.MaxLeaseTTL: a larger TTL is refused with kErrLeaseTtlTooLarge.
inline constexpr int64_t kMaxLeaseTtlSec = 9'000'000'000;

// etcd's texts (rpctypes); kv_convert.cc maps them to their gRPC codes.
inline constexpr const char* kErrLeaseNotFound = mvcc::kErrLeaseNotFound;  // NotFound
inline constexpr const char* kErrLeaseExists = "etcdserver: lease already exists";  // FailedPrecondition
inline constexpr const char* kErrLeaseTtlTooLarge = "etcdserver: too large lease TTL";  // OutOfRange

// A grant as it travels in the log: the proposer has chosen the id (never 0)
// and raised the TTL to its minimum, so applying it reads no configuration.
struct GrantRequest {
  int64_t id = 0;
  int64_t ttl = 0;  // seconds
  bool operator==(const GrantRequest&) const = default;
};

struct GrantResponse {
  mvcc::ResponseHeader header;
  int64_t id = 0;
  int64_t ttl = 0;
  bool operator==(const GrantResponse&) const = default;
};

struct RevokeRequest {
  int64_t id = 0;
  bool operator==(const RevokeRequest&) const = default;
};

// header.revision: the revision of the deletes of the lease's keys (the
// store's current revision if it had none).
struct RevokeResponse {
  mvcc::ResponseHeader header;
  bool operator==(const RevokeResponse&) const = default;
};

}  // namespace ckv::lease
