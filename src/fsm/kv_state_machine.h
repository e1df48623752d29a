// The replicated state machine: applies committed commands to the MVCC store, serves reads, streams snapshots.
//
// What it holds: the etcd MVCC store (src/mvcc/store.h: every key's
// versions since the compacted revision), the idempotency table
// (idempotency_table.h), leases, auth and alarms (alarm_table.h), all replicated: every node applies the same
// commands in log order and gets the same state and the same results.
// Apply is deterministic: it reads no clock (the idempotency window uses
// the proposers' clocks carried in the commands), no randomness, no I/O.
//
// Thread safety: apply(), skip(), restore*() and begin_snapshot() run on
// the Raft thread (the only writer); write_snapshot() and end_snapshot() on
// the snapshot writer thread; every read (range, get, revision, ...) from
// any thread. Readers share a lock with each other and with the snapshot
// writer; apply() holds it exclusively for one command.
//
// Snapshots never stall writes or reads for long: begin_snapshot() records
// the store's revision and freezes the (bounded) idempotency table, one
// shared pointer per entry; the
// snapshot thread then streams the store in chunks of kSnapshotChunkKeys
// keys, each under the shared lock, while the Raft thread goes on applying
// between chunks (mvcc::Store::SnapshotCursor says why that is consistent).
// A write waits for at most one chunk (bench/fsm_snapshot_stall measures
// it; docs/design-notes.md has the numbers).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "auth/auth_store.h"
#include "common/status.h"
#include "fsm/alarm_table.h"
#include "fsm/command.h"
#include "fsm/idempotency_table.h"
#include "lease/lessor.h"
#include "mvcc/store.h"

namespace ckv::fsm {

// What applying one command produced.
struct ApplyResult {
  Status status;           // the request's own outcome (etcd's error text); ok: response is set
  Response response;       // its header.revision is the store's
  bool duplicate = false;  // answered from the idempotency table, not applied again
};

// The whole replicated state as read from a snapshot: decoded and checked
// before anything is replaced, so a bad snapshot changes nothing.
struct RestoredState {
  mvcc::Store store;
  IdempotencyTable table;
  // Leases and TTLs from the payload; attachments rebuilt from the store's live keys.
  lease::LeaseTable leases;
  auth::AuthStore auth;  // users, roles, enabled (payload format 3; empty before)
  AlarmTable alarms;     // raised alarms (payload format 4; none before)
};

// A hash of the replicated state (Maintenance.HashKV and Hash): hash at
// revision (the one asked for, or the current one for 0), with the store's
// compact revision then and its current revision (the response header's).
struct StateHash {
  uint32_t hash = 0;
  int64_t revision = 0;
  int64_t compact_revision = 0;
  int64_t current_revision = 0;
};

class KvStateMachine {
 public:
  KvStateMachine();
  // Keys per snapshot chunk: the longest a write can wait for the snapshot thread.
  static constexpr size_t kSnapshotChunkKeys = 256;
  // How often the snapshot thread lets a waiting writer go first before
  // taking the lock for its next chunk (std::shared_mutex is not fair).
  static constexpr int kMaxSnapshotYields = 10000;

  // Applies one committed command at index (which must grow; an index at
  // or below applied_index() is a replay and changes nothing: its result is
  // kInvalid "already applied").
  ApplyResult apply(uint64_t index, const Command& c);
  // Records that index was applied without changing the store (no-ops, config entries).
  void skip(uint64_t index);
  // A compaction only moves compact_revision() when applied; the versions
  // it makes unreadable are dropped here, kCompactionStepKeys keys per call
  // under the exclusive lock, so neither reads nor writes wait for a pass
  // over the whole store (1M keys: ~60 ms). Raft thread; true while keys
  // remain (call again soon). Pauses while a snapshot is being written.
  bool compact_step();
  static constexpr size_t kCompactionStepKeys = 1024;
  // How the state machine's stores are configured (incremental compaction).
  static mvcc::StoreOptions store_options();

  // Watchers (src/watch/watch_hub.h). Set before the node starts applying;
  // both run on the Raft thread while apply()/restore() hold the lock
  // exclusively, so they must not block: on_events after each applied write
  // that changed something (its store revision and Store::last_events()),
  // on_restore after a snapshot replaced the store.
  struct WatchHooks {
    std::function<void(int64_t revision, const std::vector<mvcc::Event>& events)> on_events;
    std::function<void(int64_t revision)> on_restore;
  };
  void set_watch_hooks(WatchHooks hooks) { hooks_ = std::move(hooks); }
  // The members' token tables (auth/simple_tokens.h), told about applied
  // auth changes on the Raft thread under the exclusive lock (must not
  // block): a successful Authenticate (user, token digest), a user whose
  // tokens die (deleted, new password), and auth disabled or the state
  // replaced by a snapshot (every token dies). Set before applying starts.
  struct AuthHooks {
    std::function<void(const std::string& user, const std::string& token_digest)> on_authenticated;
    std::function<void(const std::string& user)> on_user_invalidated;
    std::function<void()> on_all_invalidated;
  };
  void set_auth_hooks(AuthHooks hooks) { auth_hooks_ = std::move(hooks); }
  // Runs fn with the store under the shared lock: no write is applied
  // while it runs (watchers replay history this way without a seam).
  void with_store(const std::function<void(const mvcc::Store&)>& fn) const;

  // Reads of the current state (the etcd Range semantics of mvcc::Store).
  Result<mvcc::RangeResponse> range(const mvcc::RangeRequest& r) const;
  // A txn that writes nothing (mvcc::is_txn_read_only), evaluated on the
  // current state under the shared lock: its compares and ranges all see
  // one revision, and no log entry is needed (mvcc::Store::read_txn).
  Result<mvcc::TxnResponse> read_txn(const mvcc::TxnRequest& r) const;
  // The same for a caller once auth is enabled: the permission check
  // (fsm/authorize.h) and the read under one shared lock, so no auth change
  // falls between them.
  Result<mvcc::RangeResponse> range_as(const auth::Caller& caller, const mvcc::RangeRequest& r) const;
  Result<mvcc::TxnResponse> read_txn_as(const auth::Caller& caller, const mvcc::TxnRequest& r) const;
  // Whether c's caller may propose it now (fsm/authorize.h): front ends
  // refuse early, apply checks again.
  Status authorize(const Command& c) const;
  // Auth state reads (the Auth service's gets and lists, identity checks).
  // fn runs under the shared lock and must not block.
  void with_auth(const std::function<void(const auth::AuthStore&)>& fn) const;
  bool auth_enabled() const;
  uint64_t auth_revision() const;
  // The current value of key (the seed API's /get).
  std::optional<std::string> get(std::string_view key) const;
  int64_t revision() const;
  int64_t compact_revision() const;
  uint64_t applied_index() const;
  // Keys with retained versions (live or deleted) and all retained versions:
  // what memory grows with.
  size_t key_count() const;
  size_t version_count() const;  // a pass over all keys
  size_t idempotency_entries() const;
  // Estimated bytes of the replicated state in memory: the MVCC store's
  // estimate (mvcc::Store::estimated_bytes) plus the idempotency table's
  // keys and results. Maintenance.Status reports it as dbSizeInUse.
  uint64_t estimated_bytes() const;
  // The replicated lease table (lease/lessor.h): one lease with its keys,
  // every lease id with its granted TTL (id order).
  std::optional<lease::LeaseInfo> lease_info(int64_t id) const;
  std::vector<std::pair<int64_t, int64_t>> lease_ttls() const;
  // The raised alarms (alarm_table.h), in (member, type) order.
  std::vector<AlarmMember> alarms() const;

  // Hashes (docs/api.md, Maintenance). hash_kv is etcd's HashKV over the
  // MVCC history up to rev (mvcc::Store::HashCursor says what it covers):
  // equal on every member that applied the same log, whatever its
  // compaction's progress. hash_state is our Hash: the MVCC hash at the
  // current revision, chained (CRC-32C) with the encoded lease table, auth
  // store and alarm set as of the start. Both are O(keys + versions) but
  // hold the shared lock for kHashChunkKeys keys at a time, yielding to a
  // waiting writer between chunks (as a snapshot does), so the Raft thread
  // waits for one chunk at most. A compaction or a snapshot install during
  // the pass restarts it (at most kMaxHashRestarts times, then kUnavailable);
  // kInvalid with etcd's texts for a compacted or future rev. Any thread.
  static constexpr size_t kHashChunkKeys = 256;
  static constexpr int kMaxHashRestarts = 8;
  Result<StateHash> hash_kv(int64_t rev) const;
  Result<StateHash> hash_state() const;

  // Snapshots. begin_snapshot() (Raft thread) captures the state at
  // applied_index(); write_snapshot() (snapshot thread) passes the payload
  // to sink in pieces; end_snapshot() (snapshot thread, also after a failed
  // write) finishes; a compaction's pass resumes. At most one
  // at a time; no restore meanwhile.
  struct SnapshotJob {
    uint64_t index = 0;
    int64_t revision = 0;
    mvcc::Store::SnapshotCursor cursor;
    IdempotencyTable::Frozen
        table;  // the idempotency table at index (encoded by the snapshot thread)
    std::string leases;  // the lease table at index, encoded (16 bytes a lease)
    std::string auth;    // the auth store at index, encoded (auth_store.h)
    std::string alarms;  // the alarm set at index, encoded (alarm_table.h)
  };
  std::unique_ptr<SnapshotJob> begin_snapshot();
  Status write_snapshot(SnapshotJob& job,
                        const std::function<Status(std::string_view)>& sink) const;
  void end_snapshot();

  // The payload write_snapshot() writes, decoded and checked (kCorrupt with the reason).
  static Result<RestoredState> decode_payload(std::string_view payload);
  // The payload for the current state in one string (tests, small states).
  std::string encode_payload() const;
  // Replaces all state (InstallSnapshot or restart).
  void restore(RestoredState state, uint64_t index);
  // From a CKVSNAP1 snapshot (the key-value map before the MVCC store): each
  // key a put, in key order, into an empty store; no idempotency entries.
  void restore_legacy(const std::map<std::string, std::string, std::less<>>& map, uint64_t index);

 private:
  ApplyResult execute(const Command& c);  // requires mu_ exclusively
  ApplyResult execute_auth(const auth::AuthRequest& r);  // the same
  ApplyResult execute_alarm(const AlarmRequest& r);       // the same
  // What raised alarms refuse c with (ok: nothing), alarm_table.h.
  Status alarm_refusal(const Command& c) const;
  // Yields to a writer blocked on mu_, within kMaxSnapshotYields (the
  // snapshot and hash threads, before each chunk).
  void let_writers_in() const;
  // The pass of both: with_sections, the lease, auth and alarm encodings,
  // taken under the same shared lock as the pass's start, are chained after
  // the store's hash.
  Result<StateHash> hash_pass(int64_t rev, bool with_sections) const;

  mutable std::shared_mutex mu_;
  // apply() calls blocked on mu_: the snapshot thread lets them in first.
  mutable std::atomic<int> waiting_writers_{0};
  mvcc::Store store_;
  IdempotencyTable table_;
  lease::LeaseTable leases_;
  auth::AuthStore auth_;
  AlarmTable alarms_;
  uint64_t applied_ = 0;
  uint64_t restores_ = 0;  // restore() calls: a hash pass restarts across one
  bool snapshotting_ = false;
  WatchHooks hooks_;
  AuthHooks auth_hooks_;
};

}  // namespace ckv::fsm
