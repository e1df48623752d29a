// The MVCC key-value store: etcd 3.4's revisioned data model, pure (no I/O, threads, clock).
#pragma once

// What it is: the future state machine behind the etcd KV API. One global
// revision (an empty store is at revision 1, as etcd); each write request or
// txn that changes something takes the next revision, and its changes are
// numbered by sub-revision in order. Every version of every key since the
// compacted revision is kept, so reads at past revisions are exact.
//
// Ownership and threads: a Store is a plain value. It is not thread safe;
// the node's apply loop owns it. Readers elsewhere need their own copy (or a
// snapshot) until the node layer provides a frozen view.
//
// Leases: a put records `lease` as given. Whether a lease exists is the
// lessor's question: put and txn take a LeaseLookup and answer etcd's
// "requested lease not found" where etcd does (for a txn, only puts on the
// branch its compares choose), so the store holds no lease state itself.
//
// Errors: Status with StatusCode::kInvalid and etcd's exact text (errors.h);
// a failed request changes nothing.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "mvcc/errors.h"
#include "mvcc/types.h"

namespace ckv::mvcc {

// etcd's revision: main is the store revision of a write, sub the index of
// the change within it (a txn's third write is {rev, 2}).
struct Revision {
  int64_t main = 0;
  int64_t sub = 0;
  auto operator<=>(const Revision&) const = default;
};

// One version of one key. A tombstone marks a delete; it ends the key's
// current life ("generation" in etcd), and the next put starts at version 1.
struct KeyVersion {
  Revision revision;
  bool tombstone = false;
  int64_t create_revision = 0;
  int64_t version = 0;
  int64_t lease = 0;
  std::string value;
  bool operator==(const KeyVersion&) const = default;
};

// Whether a lease id (never 0, which means "no lease") exists. An empty
// LeaseLookup accepts every id: for callers with no lessor yet.
using LeaseLookup = std::function<bool(int64_t lease)>;

struct StoreOptions {
  size_t max_txn_ops = kDefaultMaxTxnOps;  // etcd's --max-txn-ops
  // false: compact() drops old versions before it returns. true: it only
  // moves compact_revision() (reads below it fail at once) and the caller
  // drops the versions in steps with compact_step(), so a compaction of a
  // large store never holds its writer for one long pass (the node's state
  // machine does this).
  bool incremental_compaction = false;
};

class Store {
 public:
  explicit Store(StoreOptions options = {});

  // The store's current revision: 1 when empty, then that of the last change.
  int64_t revision() const { return current_revision_; }
  // The revision of the last compaction; -1 before the first (as etcd's compactMainRev).
  int64_t compact_revision() const { return compact_revision_; }

  Result<RangeResponse> range(const RangeRequest& r) const;
  Result<PutResponse> put(const PutRequest& r, const LeaseLookup& lease_exists = {});
  Result<DeleteRangeResponse> delete_range(const DeleteRangeRequest& r);
  Result<TxnResponse> txn(const TxnRequest& r, const LeaseLookup& lease_exists = {});
  // A txn that writes nothing (is_txn_read_only), evaluated on the current
  // state without changing anything: the same answer txn() gives for it,
  // compares and ranges all at revision(). Const, so readers may run it under
  // a shared lock (etcd serves such txns like a Range, not through Raft).
  // A txn that writes is kInvalid here (a caller's mistake, never applied).
  Result<TxnResponse> read_txn(const TxnRequest& r) const;
  // Deletes each live key of `keys` (absent ones are skipped) in ONE
  // revision, in the order given, so watchers see them as one revision's
  // events: a lease revoke's write (lease/lessor.h). Changes nothing (and
  // takes no revision) when none is live; like delete_range otherwise.
  DeleteRangeResponse delete_keys(const std::vector<std::string>& keys);
  // Calls fn(key, lease) for every live key that carries a lease, in key
  // order: what a restored lease table rebuilds its attachments from.
  void for_each_leased_key(const std::function<void(const std::string&, int64_t)>& fn) const;
  // The changes made by the last put(), delete_range() or txn() call (a
  // compact() clears them), in
  // sub-revision order (all at revision()); empty if it failed or changed
  // nothing. Each write replaces the list: the node's apply loop reads it
  // right after the write (watchers, lease attachment).
  const std::vector<Event>& last_events() const { return last_events_; }
  // For a replicated command that writes nothing here (a lease grant, a
  // revoke of an unknown lease): last_events() is then empty, not the
  // previous write's (watchers would get those twice).
  void clear_last_events() { last_events_.clear(); }

  // A page of history for watchers (src/watch/): the events of the keys in
  // [key, range_end) (range_end as RangeRequest's: empty is the single key,
  // "\0" every key >= key) made at revisions [from, to], in revision order
  // and within a revision in sub-revision order, each carrying prev_kv as
  // last_events() does (absent where compaction dropped it). Bounded: at
  // most max_events (>= 1) events, cut at a revision boundary, except that
  // one revision always comes whole (a txn's events are never split).
  // `next` is the first revision the page does not cover (to + 1 once the
  // whole span is covered). Cost: a pass over the range's keys plus
  // O(max_events log max_events). kErrCompacted if from < compact_revision()
  // (etcd's watcher rule: reading at exactly the compacted revision works).
  struct EventPage {
    std::vector<Event> events;
    int64_t next = 0;
  };
  Result<EventPage> events_between(const std::string& key, const std::string& range_end,
                                   int64_t from, int64_t to, size_t max_events) const;

  // Drops every version not needed to answer reads at revisions >= r.revision
  // (with incremental_compaction: in later compact_step() calls).
  Result<CompactionResponse> compact(const CompactionRequest& r);
  // Drops the old versions of at most max_keys more keys for the last
  // compaction; true while keys remain. Nothing while a snapshot stream is
  // open. Answers never depend on it: versions below compact_revision()
  // are unreadable whether or not they are gone yet.
  bool compact_step(size_t max_keys);
  bool compaction_pending() const { return pending_compaction_ >= 0; }

  // The whole store (revisions, compaction point, every retained version) as a
  // versioned, CRC-32C-checked byte string; restore gives a store that answers
  // every request identically.
  std::string encode_snapshot() const;
  // on_leased_key, when given, is called as for_each_leased_key would be
  // on the result, during the decode: a restore needs no second walk over
  // every key (a million of them, issue 10). On a failed decode some calls
  // may have been made; the caller discards what they built.
  using LeasedKeySink = std::function<void(const std::string& key, int64_t lease)>;
  static Result<Store> decode_snapshot(std::string_view bytes, StoreOptions options = {},
                                       const LeasedKeySink& on_leased_key = nullptr);

  // The same bytes, streamed in chunks while writes go on, so that a
  // snapshot never stalls writes for longer than one chunk. The store is
  // still not thread safe: the caller runs next_snapshot_chunk() under a
  // shared lock and every write under an exclusive one
  // (fsm/kv_state_machine.h). Why it is consistent without a copy: the
  // stream writes the store as of its start revision R, and a write only
  // ever appends versions above R (or pops them again on rollback), so
  // each key's versions at or below R stay put. The one write that removes
  // old versions, compaction, is deferred while a stream is open: it takes
  // effect for reads at once (compact_revision() moves, reads below it
  // fail), and drops the versions after end_snapshot_stream(). At most
  // one stream at a time.
  struct SnapshotCursor {
    int64_t revision = 0;          // R: what the stream captures
    int64_t compact_revision = 0;  // as of R
    uint64_t key_count = 0;        // keys with versions to write
    // While a compaction's versions are still being dropped, some keys may
    // hold nothing for the snapshot: the first chunks only count them.
    bool counted = false;
    std::string count_resume;      // counting resumes after this key
    bool count_started = false;
    uint64_t keys_written = 0;
    std::string last_key;          // resume after this key
    bool header_written = false;
    bool done = false;
    uint32_t crc = 0;              // running CRC-32C of the bytes so far
  };
  SnapshotCursor begin_snapshot_stream();
  // Appends the next chunk (at most max_keys keys, >= 1; possibly nothing
  // while counting) to out; returns false once the last chunk, with the
  // CRC trailer, has been appended.
  bool next_snapshot_chunk(SnapshotCursor& c, size_t max_keys, std::string& out) const;
  // Ends the stream; a compaction deferred meanwhile proceeds (at once
  // without incremental_compaction, else by compact_step()).
  void end_snapshot_stream();

  // etcd's HashKV: a CRC-32C (Castagnoli, as etcd's) over the MVCC history
  // a read at any revision in (compact_revision(), rev] can see, so two
  // stores built by the same writes and compactions hash equal at the same
  // revision whatever their physical state (a compaction's versions not yet
  // dropped do not count). What it covers, in key order: per key u32 key
  // length and the key, then each version with compact_revision() <
  // main <= rev, plus the newest version at or below compact_revision() if
  // it is not a tombstone (what etcd's compaction keeps), each as i64 main,
  // i64 sub, u8 tombstone, i64 create_revision, i64 version, i64 lease, u32
  // value length and the value; keys with nothing to cover are left out.
  // etcd hashes its bbolt records instead, so the numbers never equal
  // etcd's; docs/api.md says so. Streamed like a snapshot, max_keys keys a
  // call, so the caller can release its lock between chunks: versions at or
  // below rev never change while writes go on (they only append above the
  // current revision); a compaction or a restore does change them, and the
  // caller then starts again (kv_state_machine.h, hash_kv).
  struct HashCursor {
    int64_t revision = 0;          // rev: the last revision covered
    int64_t compact_revision = 0;  // as of the start
    std::string last_key;          // resume after this key
    bool started = false;
    bool done = false;
    uint32_t crc = 0;
  };
  // rev 0 is revision(). kErrCompacted for 0 < rev <= compact_revision(),
  // kErrFutureRev above revision() (etcd's HashByRev checks).
  Result<HashCursor> begin_hash(int64_t rev) const;
  // Hashes the next max_keys (>= 1) keys; false once the cursor is done
  // (c.crc is then the hash).
  bool next_hash_chunk(HashCursor& c, size_t max_keys) const;

  // Keys with at least one retained version (live or tombstoned), and all
  // retained versions: what the store's memory grows with.
  size_t key_count() const { return index_.size(); }
  size_t version_count() const;
  // An estimate of the memory the retained state takes, in bytes, kept up
  // to date by every write, rollback, compaction step and snapshot decode
  // (O(1) to read): each key's bytes plus kKeyOverheadBytes, each retained
  // version's value bytes plus kVersionOverheadBytes. What etcd's
  // dbSizeInUse reports for its backend (docs/api.md, Maintenance.Status).
  // It leaves out the allocator's own overhead and vector growth slack
  // (measured: ~20% more, docs/design-notes.md "Memory, measured").
  uint64_t estimated_bytes() const { return bytes_; }
  // The fixed parts of the estimate: a key's map node (tree links, the key
  // string, its history vector), and one version record (revision, flags,
  // create revision, version, lease, the value string).
  static constexpr uint64_t kKeyOverheadBytes =
      32 + sizeof(std::string) + sizeof(std::vector<KeyVersion>);
  static constexpr uint64_t kVersionOverheadBytes = sizeof(KeyVersion);

  // Every retained version of `key`, oldest first (tests and debugging).
  const std::vector<KeyVersion>* history(const std::string& key) const;

  // Equal state: same revisions and the same retained versions (a
  // compaction counts as done only once its versions are dropped).
  bool operator==(const Store& o) const {
    return current_revision_ == o.current_revision_ && compact_revision_ == o.compact_revision_ &&
           index_ == o.index_;
  }

 private:
  // The key index: every key's versions, oldest first, in key order. See
  // docs/design-notes.md ("MVCC store") for why a sorted map of per-key
  // histories rather than etcd's B-tree plus revision-keyed backend.
  using Index = std::map<std::string, std::vector<KeyVersion>, std::less<>>;

  class WriteTxn;

  struct RangeResult {
    std::vector<KeyValue> kvs;
    int64_t count = 0;
    int64_t revision = 0;
  };

  // etcd's mvcc rangeKeys: the keys of [key, end) live at `at`, in key order,
  // at most `limit` of them (0: all); count is the number of such keys.
  RangeResult range_keys(const std::string& key, const std::string& range_end, int64_t at,
                         int64_t cur_rev, int64_t limit, bool count_only) const;
  // etcd's applier Range, reading at read_rev (the revision a txn sees so far).
  Result<RangeResponse> range_at(const RangeRequest& r, int64_t read_rev) const;
  // etcd's applyCompares on the current state.
  bool compare_holds(const Compare& c) const;
  void txn_path(const TxnRequest& r, std::vector<bool>& path) const;
  Status check_txn_path(const TxnRequest& r, const std::vector<bool>& path, size_t& at,
                        const LeaseLookup& lease_exists) const;
  // read_txn's walk of the chosen branches (WriteTxn::txn without writes).
  Status read_txn_ops(const TxnRequest& r, const std::vector<bool>& path, size_t& at,
                      TxnResponse& resp) const;

  friend class SnapshotCodec;

  // Drops the versions of one key that a compaction at `revision` makes
  // unreadable; returns the iterator after it (the key may be erased).
  std::map<std::string, std::vector<KeyVersion>, std::less<>>::iterator compact_key(
      std::map<std::string, std::vector<KeyVersion>, std::less<>>::iterator it, int64_t revision);

  StoreOptions options_;
  int64_t current_revision_ = 1;
  int64_t compact_revision_ = -1;
  Index index_;
  std::vector<Event> last_events_;  // of the last write (last_events())
  uint64_t bytes_ = 0;              // estimated_bytes()
  static uint64_t key_cost(const std::string& key) { return kKeyOverheadBytes + key.size(); }
  static uint64_t version_cost(const KeyVersion& v) {
    return kVersionOverheadBytes + v.value.size();
  }
  bool streaming_ = false;            // a snapshot stream is open: dropping versions waits
  int64_t pending_compaction_ = -1;   // versions below this may still be present; -1: none
  std::string compact_resume_;        // the pass resumes after this key
  bool compact_started_ = false;      // false: the pass starts at the first key
};

}  // namespace ckv::mvcc
