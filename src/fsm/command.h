// Client commands as they travel in the Raft log, and their results: the versioned binary codecs.
//
// A Command is one etcd KV write (put, delete range, txn, compaction) plus
// the envelope the node adds: an optional idempotency key (exactly-once
// retries, Raft thesis §6.3) and the proposer's wall clock, which is the
// only clock the idempotency window ever reads (apply reads none, so every
// replica decides the same).
//
// Log format 3 (all integers little-endian; strings are u32 length + bytes):
//   u8 3, string idempotency_key, i64 proposed_at_ms, u8 flags (bit 0:
//   system), string caller user, u64 caller auth revision, u8 request kind,
//   request
// written whenever a command carries a caller, is the node's own (system:
// lease expiry, auto-compaction, which no user's permissions limit), or is
// an auth change; otherwise format 2, so older members still read plain
// writes proposed while auth is off:
//   u8 2, string idempotency_key, i64 proposed_at_ms, u8 request kind, request
// Request kinds: 1 put, 2 delete range, 3 txn, 4 compaction, 5 lease grant
// (i64 id, i64 ttl), 6 lease revoke (i64 id), 7 auth change (format 3 only:
// u8 op, string name, string role, string secret, u8 no_password, i32 perm
// type, string perm key, string perm range_end; auth/types.h), 8 alarm
// change (u8 action, u64 member id, i32 alarm type; fsm/alarm_table.h). A txn holds its
// compares and ops; ops are u8 kind (0 none, 1 range, 2 put, 3 delete,
// 4 nested txn) and their fields (see command.cc). Nesting is bounded by
// kMaxTxnNestingDepth so that a hostile entry cannot recurse the decoder
// off the stack.
//
// Log format 1 (entries written before the MVCC store, still in users'
// logs): u8 1, u8 type (1 set, 2 delete), u32 key length, key, value to the
// end. It decodes as a put or a single-key delete range without a key.
//
// Decoding never trusts a count it read: containers grow only as their
// bytes are consumed. nullopt means the bytes are not a command this
// version can read; the node stops on such an entry (never skips it:
// skipping diverges replicas, DESIGN.md "The state machine").
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "auth/types.h"
#include "fsm/alarm_table.h"
#include "lease/types.h"
#include "mvcc/types.h"

namespace ckv::fsm {

using Request = std::variant<mvcc::PutRequest, mvcc::DeleteRangeRequest, mvcc::TxnRequest,
                             mvcc::CompactionRequest, lease::GrantRequest, lease::RevokeRequest,
                             auth::AuthRequest, AlarmRequest>;

struct Command {
  Request request;
  std::string idempotency_key;  // empty: none
  // The proposer's unix wall clock in ms, stamped by Node::propose; the
  // idempotency window's only clock: apply never reads one.
  int64_t proposed_at_ms = 0;
  // Who asked (auth/types.h), checked again at apply when auth is enabled
  // (fsm/authorize.h). A follower forwards the command as it is, so the
  // leader's log names the client's user, never the follower.
  auth::Caller caller{};
  // Proposed by the node itself (lease expiry, auto-compaction): no user's
  // permissions apply, as etcd runs those with root's.
  bool system = false;
};

using Response = std::variant<mvcc::PutResponse, mvcc::DeleteRangeResponse, mvcc::TxnResponse,
                              mvcc::CompactionResponse, lease::GrantResponse, lease::RevokeResponse,
                              auth::AuthResponse, AlarmResponse>;

// The deepest txn nesting a command may carry (a txn directly in a command
// is depth 1). etcd bounds nesting only through --max-txn-ops (128 ops in
// all), which no deeper txn can satisfy; the node refuses deeper txns before
// proposing them, and the decoder refuses them in the log.
inline constexpr size_t kMaxTxnNestingDepth = 128;
// Longest idempotency key a command carries (bytes). The HTTP and gRPC
// layers refuse longer ones; the decoder refuses them in the log.
inline constexpr size_t kMaxIdempotencyKeyBytes = 256;

// The nesting depth of a request's txns (0 for anything but a txn).
size_t txn_depth(const Request& r);

// Format 2. The command must satisfy txn_depth <= kMaxTxnNestingDepth and
// the key limit (Node::propose checks both); a null nested txn encodes as an
// op without a request.
std::string encode_command(const Command& c);
std::optional<Command> decode_command(std::string_view data);

// Responses, for the idempotency table (in snapshots): u8 format 1, u8 kind
// (1 put, 2 delete, 3 txn, 4 compaction, 5 lease grant: i64 revision, i64
// id, i64 ttl; 6 lease revoke: i64 revision; 7 auth change: i64 revision;
// 8 alarm change: i64 revision, u32 count, per alarm u64 member id, i32
// type), then the fields. Same rules as above.
std::string encode_response(const Response& r);
std::optional<Response> decode_response(std::string_view data);

// Encoders of the legacy format 1, for tests of the upgrade path only.
std::string encode_legacy_set(std::string_view key, std::string_view value);
std::string encode_legacy_delete(std::string_view key);

}  // namespace ckv::fsm
