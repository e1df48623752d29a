// The HTTP API's size limits, and how -max-body-bytes relates to what Raft can replicate (pure; no I/O).
//
// Two promises hold these numbers together:
//  - every key /set accepts can be read back with GET /get?key=...: a key
//    travels URL-encoded in the request line (up to 3 bytes per byte), so the
//    request head limit is 3 x kMaxKeyBytes plus room for the rest of the
//    head (method, path, other parameters, Host, User-Agent, ...);
//  - every body -max-body-bytes accepts becomes a log entry that one Raft
//    message can carry, and that the leader's uncommitted-bytes limit admits
//    (checked once at startup, see check_max_body_bytes).
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/status.h"

namespace ckv::http {

// Longest key /set, /delete and /get accept (bytes, after JSON or URL
// decoding). etcd bounds a whole request at 1.5 MiB and keys not at all; a
// limit that keeps the longest GET line well under a megabyte is ours.
inline constexpr size_t kMaxKeyBytes = size_t{64} << 10;
// Percent-encoding turns one byte into at most three ("%C3").
inline constexpr size_t kUrlEncodingFactor = 3;
// Everything in a request head besides the encoded key: request line,
// other query parameters and headers. Beast's own default for a whole head is 8 KiB.
inline constexpr size_t kRequestHeadOverheadBytes = size_t{16} << 10;
// Largest request line + headers the server reads (larger: 431).
inline constexpr size_t kMaxRequestHeadBytes =
    kUrlEncodingFactor * kMaxKeyBytes + kRequestHeadOverheadBytes;

// The largest -max-body-bytes whose every /set can be replicated: the
// command built from a body (its key and value are never longer than their
// JSON encoding) plus the command's own encoding must fit in one Append
// message within the transport's frame limit, and within the leader's
// uncommitted-bytes limit (raft::Options::max_uncommitted_bytes), which
// otherwise refuses it for good whenever anything else is uncommitted.
uint64_t max_replicable_body_bytes(uint64_t max_uncommitted_bytes);

// kInvalid, naming both limits, when max_body_bytes is 0 or above
// max_replicable_body_bytes(max_uncommitted_bytes).
Status check_max_body_bytes(uint64_t max_body_bytes, uint64_t max_uncommitted_bytes);

}  // namespace ckv::http
