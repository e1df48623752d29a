// The replicated state machine (see kv_state_machine.h).
#include "fsm/kv_state_machine.h"

#include <mutex>
#include <thread>
#include <utility>

#include <spdlog/spdlog.h>

#include "common/bytes.h"
#include "common/check.h"
#include "common/crc32c.h"
#include "auth/password.h"
#include "fsm/authorize.h"

namespace ckv::fsm {

namespace {

// Payload layout: u8 kPayloadFormat, u64 table length, the encoded
// idempotency table, u32 CRC-32C of the table, then (format 2) u64 lease
// table length, the encoded lease table (lease/lessor.h), u32 CRC-32C of it,
// then the MVCC store's snapshot (mvcc/snapshot.cc, with its own CRC) to
// the end. The file around it has a CRC too; these make the payload check
// itself wherever it travels. Format 3 adds, after the lease table, u64
// auth store length, the encoded auth store (auth/auth_store.h), u32
// CRC-32C of it. Format 4 adds, after the auth store, u64 alarm set length,
// the encoded alarm set (fsm/alarm_table.h), u32 CRC-32C of it; it is
// written only while an alarm is raised, format 3 otherwise. Formats 1
// (before leases: no leases), 2 (before auth: auth disabled, no users) and
// 3 (no alarms) are read.
constexpr uint8_t kPayloadFormatNoLeases = 1;
constexpr uint8_t kPayloadFormatNoAuth = 2;
constexpr uint8_t kPayloadFormatNoAlarms = 3;
constexpr uint8_t kPayloadFormat = 4;

Status corrupt(const std::string& why) {
  return Status(StatusCode::kCorrupt, "state machine snapshot: " + why);
}

void put_section(std::string& out, std::string_view section) {
  put_u64le(out, section.size());
  out.append(section);
  put_u32le(out, crc32c(section));
}

// Format 3 while no alarm is raised (the usual case), so that members of
// the version before alarms still read this member's snapshots; format 4
// only once an alarm needs its section (docs/operations.md, "Upgrades").
std::string payload_header(std::string_view table, std::string_view leases, std::string_view auth,
                           std::string_view alarms) {
  const bool with_alarms = alarms != AlarmTable().encode();
  std::string out;
  put_u8(out, with_alarms ? kPayloadFormat : kPayloadFormatNoAlarms);
  put_section(out, table);
  put_section(out, leases);
  put_section(out, auth);
  if (with_alarms) put_section(out, alarms);
  return out;
}

// Whether a txn puts anything, on either branch, nested txns included:
// etcd's capped applier refuses a txn whose puts would cost space whichever
// branch its compares choose (3.4 counts only the top level's puts; a nested
// put grows the store just the same).
bool txn_puts(const mvcc::TxnRequest& t) {
  for (const auto* ops : {&t.success, &t.failure}) {
    for (const mvcc::RequestOp& op : *ops) {
      if (std::holds_alternative<mvcc::PutRequest>(op.request)) return true;
      if (const auto* n = std::get_if<std::shared_ptr<const mvcc::TxnRequest>>(&op.request);
          n && *n && txn_puts(**n)) {
        return true;
      }
    }
  }
  return false;
}

// An empty response of the request's kind, for a command refused before it ran.
Response empty_response_for(const Request& request) {
  return std::visit(
      [](const auto& req) -> Response {
        using Q = std::decay_t<decltype(req)>;
        if constexpr (std::is_same_v<Q, mvcc::PutRequest>) return mvcc::PutResponse{};
        if constexpr (std::is_same_v<Q, mvcc::DeleteRangeRequest>) return mvcc::DeleteRangeResponse{};
        if constexpr (std::is_same_v<Q, mvcc::TxnRequest>) return mvcc::TxnResponse{};
        if constexpr (std::is_same_v<Q, mvcc::CompactionRequest>) return mvcc::CompactionResponse{};
        if constexpr (std::is_same_v<Q, lease::GrantRequest>) return lease::GrantResponse{};
        if constexpr (std::is_same_v<Q, lease::RevokeRequest>) return lease::RevokeResponse{};
        if constexpr (std::is_same_v<Q, auth::AuthRequest>) return auth::AuthResponse{};
        if constexpr (std::is_same_v<Q, AlarmRequest>) return AlarmResponse{};
      },
      request);
}

// A length-prefixed, checksummed section of the payload; false if truncated or damaged.
bool read_section(ByteReader& r, std::string_view& out) {
  uint64_t len = 0;
  if (!r.u64le(len) || r.remaining() < 4 || len > r.remaining() - 4) return false;
  const std::string_view rest = r.rest();
  out = rest.substr(0, len);
  ByteReader crc_reader(rest.substr(len, 4));
  uint32_t crc = 0;
  if (!crc_reader.u32le(crc) || crc != crc32c(out)) return false;
  r = ByteReader(rest.substr(len + 4));
  return true;
}

}  // namespace

ApplyResult KvStateMachine::apply(uint64_t index, const Command& c) {
  waiting_writers_.fetch_add(1, std::memory_order_relaxed);
  std::unique_lock lock(mu_);
  waiting_writers_.fetch_sub(1, std::memory_order_relaxed);
  if (index <= applied_) {
    ApplyResult replay;
    replay.status =
        Status(StatusCode::kInvalid, "log index " + std::to_string(index) + " was applied already");
    return replay;
  }
  applied_ = index;
  // Expiry first, on the proposers' clock (idempotency_table.h): a retry
  // proposed after the window is applied again, on every replica alike.
  table_.advance_clock(c.proposed_at_ms);
  if (!c.idempotency_key.empty()) {
    if (const IdempotencyTable::Entry* e = table_.find(c.idempotency_key)) {
      ApplyResult dup;
      dup.duplicate = true;
      dup.status = e->status;
      if (e->status.is_ok()) {
        auto resp = decode_response(e->response);
        // decode() checked every stored response and insert() stores only encodings.
        KV_CHECK(resp.has_value(), "undecodable response in the idempotency table");
        dup.response = std::move(*resp);
      }
      return dup;
    }
  }
  ApplyResult out = execute(c);
  // Watchers see the write before the lock is released, so a watcher
  // replaying history under the shared lock never misses it.
  if (hooks_.on_events && !store_.last_events().empty()) {
    hooks_.on_events(store_.revision(), store_.last_events());
  }
  if (!c.idempotency_key.empty()) {
    table_.insert(c.idempotency_key,
                  IdempotencyTable::Entry{
                      c.proposed_at_ms, out.status,
                      out.status.is_ok() ? encode_response(out.response) : std::string()});
  }
  return out;
}

ApplyResult KvStateMachine::execute(const Command& c) {
  ApplyResult out;
  // On failure the response is the request's kind with the store's revision.
  auto take = [&](auto&& result) {
    using R = std::decay_t<decltype(result.value())>;
    if (result.is_ok()) {
      out.response = std::move(result).value();
    } else {
      out.status = result.status();
      R empty;
      empty.header.revision = store_.revision();
      out.response = std::move(empty);
    }
  };
  Status refusal = fsm::authorize(auth_, leases_, c);
  const bool by_auth = !refusal.is_ok();
  if (!by_auth) refusal = alarm_refusal(c);
  if (!refusal.is_ok()) {
    // Refused at apply (fsm/authorize.h, alarm_table.h): nothing changes, on every replica alike.
    store_.clear_last_events();
    out.status = refusal;
    out.response = empty_response_for(c.request);
    std::visit([&](auto& resp) { resp.header.revision = store_.revision(); }, out.response);
    if (by_auth) {
      spdlog::warn("refused at apply: user \"{}\" (auth revision {}, store at {}): {}",
                   c.caller.user, c.caller.revision, auth_.revision(), refusal.message());
    }
    return out;
  }
  if (auto* a = std::get_if<auth::AuthRequest>(&c.request)) return execute_auth(*a);
  if (auto* a = std::get_if<AlarmRequest>(&c.request)) return execute_alarm(*a);
  const mvcc::LeaseLookup lease_exists = [this](int64_t id) { return leases_.exists(id); };
  if (auto* p = std::get_if<mvcc::PutRequest>(&c.request)) {
    take(store_.put(*p, lease_exists));
  } else if (auto* d = std::get_if<mvcc::DeleteRangeRequest>(&c.request)) {
    take(store_.delete_range(*d));
  } else if (auto* t = std::get_if<mvcc::TxnRequest>(&c.request)) {
    take(store_.txn(*t, lease_exists));
  } else if (auto* k = std::get_if<mvcc::CompactionRequest>(&c.request)) {
    take(store_.compact(*k));
  } else if (auto* g = std::get_if<lease::GrantRequest>(&c.request)) {
    store_.clear_last_events();  // a grant writes no key
    lease::GrantResponse resp;
    resp.header.revision = store_.revision();
    out.status = leases_.grant(g->id, g->ttl);
    if (out.status.is_ok()) {
      resp.id = g->id;
      resp.ttl = g->ttl;
    }
    out.response = resp;
    return out;
  } else {
    // A revoke deletes the lease's keys in one revision (store.h, delete_keys).
    const int64_t id = std::get<lease::RevokeRequest>(c.request).id;
    lease::RevokeResponse resp;
    if (auto keys = leases_.revoke(id)) {
      resp.header.revision = store_.delete_keys(*keys).header.revision;
    } else {
      store_.clear_last_events();
      out.status = Status(StatusCode::kNotFound, lease::kErrLeaseNotFound);
      resp.header.revision = store_.revision();
    }
    out.response = resp;
    return out;
  }
  // Keys follow their puts and deletes to and from leases.
  if (out.status.is_ok()) leases_.apply_events(store_.last_events());
  return out;
}

ApplyResult KvStateMachine::execute_auth(const auth::AuthRequest& r) {
  store_.clear_last_events();  // an auth change writes no key
  ApplyResult out;
  auth::AuthResponse resp;
  resp.header.revision = store_.revision();
  out.response = resp;
  out.status = auth_.apply(r);
  if (r.op == auth::AuthOp::kAuthenticate) {
    // Not logged here: one per client login; the service logs refusals.
    if (out.status.is_ok() && auth_hooks_.on_authenticated) {
      auth_hooks_.on_authenticated(r.name, r.secret.substr(0, auth::kDigestBytes));
    }
    return out;
  }
  if (!out.status.is_ok()) {
    spdlog::info("auth: refused to {}: {}", auth::describe(r), out.status.message());
    return out;
  }
  spdlog::info("auth: {} (auth revision {})", auth::describe(r), auth_.revision());
  if ((r.op == auth::AuthOp::kUserDelete || r.op == auth::AuthOp::kUserChangePassword) &&
      auth_hooks_.on_user_invalidated) {
    auth_hooks_.on_user_invalidated(r.name);
  }
  if (r.op == auth::AuthOp::kDisable && auth_hooks_.on_all_invalidated) auth_hooks_.on_all_invalidated();
  return out;
}

Status KvStateMachine::alarm_refusal(const Command& c) const {
  if (alarms_.empty()) return Status::ok();
  const Request& q = c.request;
  // etcd's applierV3Corrupt: every KV and lease write.
  const bool kv_or_lease = !std::holds_alternative<auth::AuthRequest>(q) && !std::holds_alternative<AlarmRequest>(q);
  if (kv_or_lease && alarms_.active(AlarmType::kCorrupt)) return Status(StatusCode::kCorrupt, kErrCorrupt);
  // etcd's applierV3Capped: what grows the store (deletes, revokes and compactions free space).
  const auto* t = std::get_if<mvcc::TxnRequest>(&q);
  const bool grows = std::holds_alternative<mvcc::PutRequest>(q) || std::holds_alternative<lease::GrantRequest>(q) ||
                     (t != nullptr && txn_puts(*t));
  if (grows && alarms_.active(AlarmType::kNoSpace)) return Status(StatusCode::kNoSpace, kErrAlarmNoSpace);
  return Status::ok();
}

ApplyResult KvStateMachine::execute_alarm(const AlarmRequest& r) {
  store_.clear_last_events();  // an alarm change writes no key
  ApplyResult out;
  AlarmResponse resp;
  resp.header.revision = store_.revision();
  auto changed = alarms_.apply(r);
  if (changed.is_ok()) {
    resp.alarms = std::move(changed).value();
    if (r.action != AlarmAction::kGet && !resp.alarms.empty()) {
      spdlog::warn("alarm {}: {}(now {} raised)", r.action == AlarmAction::kActivate ? "raised" : "cleared",
                   describe(resp.alarms.front()), alarms_.size());
    }
  } else {
    out.status = changed.status();
  }
  out.response = std::move(resp);
  return out;
}

mvcc::StoreOptions KvStateMachine::store_options() {
  mvcc::StoreOptions o;
  o.incremental_compaction = true;
  return o;
}

KvStateMachine::KvStateMachine() : store_(store_options()) {}

bool KvStateMachine::compact_step() {
  // Only this (the Raft) thread starts or finishes a compaction pass, so
  // the check needs no lock. (While a snapshot is written the step does
  // nothing and says so: the caller asks again after it ended.)
  if (!store_.compaction_pending()) return false;
  waiting_writers_.fetch_add(1, std::memory_order_relaxed);
  std::unique_lock lock(mu_);
  waiting_writers_.fetch_sub(1, std::memory_order_relaxed);
  return store_.compact_step(kCompactionStepKeys);
}

void KvStateMachine::skip(uint64_t index) {
  waiting_writers_.fetch_add(1, std::memory_order_relaxed);
  std::unique_lock lock(mu_);
  waiting_writers_.fetch_sub(1, std::memory_order_relaxed);
  if (index > applied_) applied_ = index;
}

void KvStateMachine::with_store(const std::function<void(const mvcc::Store&)>& fn) const {
  std::shared_lock lock(mu_);
  fn(store_);
}

Result<mvcc::RangeResponse> KvStateMachine::range(const mvcc::RangeRequest& r) const {
  std::shared_lock lock(mu_);
  return store_.range(r);
}

Result<mvcc::TxnResponse> KvStateMachine::read_txn(const mvcc::TxnRequest& r) const {
  std::shared_lock lock(mu_);
  return store_.read_txn(r);
}

Result<mvcc::RangeResponse> KvStateMachine::range_as(const auth::Caller& caller,
                                                     const mvcc::RangeRequest& r) const {
  std::shared_lock lock(mu_);
  if (Status s = authorize_range(auth_, caller, r); !s.is_ok()) return s;
  return store_.range(r);
}

Result<mvcc::TxnResponse> KvStateMachine::read_txn_as(const auth::Caller& caller,
                                                      const mvcc::TxnRequest& r) const {
  std::shared_lock lock(mu_);
  if (Status s = authorize_txn(auth_, caller, r); !s.is_ok()) return s;
  return store_.read_txn(r);
}

Status KvStateMachine::authorize(const Command& c) const {
  std::shared_lock lock(mu_);
  return fsm::authorize(auth_, leases_, c);
}

void KvStateMachine::with_auth(const std::function<void(const auth::AuthStore&)>& fn) const {
  std::shared_lock lock(mu_);
  fn(auth_);
}

bool KvStateMachine::auth_enabled() const {
  std::shared_lock lock(mu_);
  return auth_.enabled();
}

uint64_t KvStateMachine::auth_revision() const {
  std::shared_lock lock(mu_);
  return auth_.revision();
}

std::optional<std::string> KvStateMachine::get(std::string_view key) const {
  mvcc::RangeRequest r;
  r.key.assign(key);
  std::shared_lock lock(mu_);
  auto res = store_.range(r);
  if (!res.is_ok() || res.value().kvs.empty()) return std::nullopt;
  return std::move(res.value().kvs.front().value);
}

int64_t KvStateMachine::revision() const {
  std::shared_lock lock(mu_);
  return store_.revision();
}

int64_t KvStateMachine::compact_revision() const {
  std::shared_lock lock(mu_);
  return store_.compact_revision();
}

uint64_t KvStateMachine::applied_index() const {
  std::shared_lock lock(mu_);
  return applied_;
}

size_t KvStateMachine::key_count() const {
  std::shared_lock lock(mu_);
  return store_.key_count();
}

size_t KvStateMachine::version_count() const {
  std::shared_lock lock(mu_);
  return store_.version_count();
}

size_t KvStateMachine::idempotency_entries() const {
  std::shared_lock lock(mu_);
  return table_.size();
}

uint64_t KvStateMachine::estimated_bytes() const {
  std::shared_lock lock(mu_);
  return store_.estimated_bytes() + table_.bytes();
}

std::optional<lease::LeaseInfo> KvStateMachine::lease_info(int64_t id) const {
  std::shared_lock lock(mu_);
  return leases_.info(id);
}

std::vector<std::pair<int64_t, int64_t>> KvStateMachine::lease_ttls() const {
  std::shared_lock lock(mu_);
  return leases_.ttls();
}

std::vector<AlarmMember> KvStateMachine::alarms() const {
  std::shared_lock lock(mu_);
  return alarms_.get(AlarmType::kNone);
}

void KvStateMachine::let_writers_in() const {
  // std::shared_mutex is not fair: re-locking at once could win against
  // the Raft thread blocked on it every time. Let a waiting writer in
  // first, within a bound.
  for (int spins = 0; spins < kMaxSnapshotYields && waiting_writers_.load(std::memory_order_relaxed) > 0;
       ++spins) {
    std::this_thread::yield();
  }
}

Result<StateHash> KvStateMachine::hash_kv(int64_t rev) const { return hash_pass(rev, false); }

Result<StateHash> KvStateMachine::hash_state() const { return hash_pass(0, true); }

Result<StateHash> KvStateMachine::hash_pass(int64_t rev, bool with_sections) const {
  for (int attempt = 0; attempt <= kMaxHashRestarts; ++attempt) {
    mvcc::Store::HashCursor cursor;
    StateHash out;
    std::string sections;
    uint64_t restores = 0;
    {
      std::shared_lock lock(mu_);
      auto begun = store_.begin_hash(rev);
      if (!begun.is_ok()) return begun.status();
      cursor = std::move(begun).value();
      out.revision = cursor.revision;
      out.compact_revision = cursor.compact_revision;
      out.current_revision = store_.revision();
      restores = restores_;
      // Small next to the store (bounded tables), taken at the same applied index.
      if (with_sections) sections = leases_.encode() + auth_.encode() + alarms_.encode();
    }
    bool restart = false;
    for (bool more = true; more && !restart;) {
      let_writers_in();
      std::shared_lock lock(mu_);
      if (restores_ != restores || store_.compact_revision() != cursor.compact_revision) {
        // The history below rev changed under the pass: a compacted rev is
        // now etcd's error, anything else starts again.
        if (rev > 0 && rev <= store_.compact_revision()) return Status(StatusCode::kInvalid, mvcc::kErrCompacted);
        restart = true;
        break;
      }
      more = store_.next_hash_chunk(cursor, kHashChunkKeys);
    }
    if (restart) continue;
    out.hash = with_sections ? crc32c(cursor.crc, sections.data(), sections.size()) : cursor.crc;
    return out;
  }
  return Status(StatusCode::kUnavailable, "the store was compacted or replaced " +
                                              std::to_string(kMaxHashRestarts + 1) +
                                              " times during the hash; retry");
}

std::unique_ptr<KvStateMachine::SnapshotJob> KvStateMachine::begin_snapshot() {
  std::unique_lock lock(mu_);
  KV_CHECK(!snapshotting_, "a snapshot is already in progress");
  snapshotting_ = true;
  auto job = std::make_unique<SnapshotJob>();
  job->index = applied_;
  job->revision = store_.revision();
  job->cursor = store_.begin_snapshot_stream();
  // Bounded (IdempotencyTable::kMaxEntries): one pointer per entry copied
  // here, on the Raft thread; the snapshot thread encodes them.
  job->table = table_.freeze();
  job->leases = leases_.encode();
  job->auth = auth_.encode();
  job->alarms = alarms_.encode();
  return job;
}

Status KvStateMachine::write_snapshot(SnapshotJob& job,
                                      const std::function<Status(std::string_view)>& sink) const {
  if (Status s = sink(payload_header(job.table.encode(), job.leases, job.auth, job.alarms)); !s.is_ok()) {
    return s;
  }
  std::string chunk;
  for (bool more = true; more;) {
    let_writers_in();
    chunk.clear();
    {
      std::shared_lock lock(mu_);
      more = store_.next_snapshot_chunk(job.cursor, kSnapshotChunkKeys, chunk);
    }
    if (Status s = sink(chunk); !s.is_ok()) return s;
  }
  return Status::ok();
}

void KvStateMachine::end_snapshot() {
  waiting_writers_.fetch_add(1, std::memory_order_relaxed);
  std::unique_lock lock(mu_);
  waiting_writers_.fetch_sub(1, std::memory_order_relaxed);
  KV_CHECK(snapshotting_, "no snapshot in progress");
  snapshotting_ = false;
  store_.end_snapshot_stream();
}

std::string KvStateMachine::encode_payload() const {
  std::shared_lock lock(mu_);
  return payload_header(table_.encode(), leases_.encode(), auth_.encode(), alarms_.encode()) +
         store_.encode_snapshot();
}

Result<RestoredState> KvStateMachine::decode_payload(std::string_view payload) {
  ByteReader r(payload);
  uint8_t format = 0;
  if (!r.u8(format)) return corrupt("empty payload");
  if (format != kPayloadFormat && format != kPayloadFormatNoAlarms && format != kPayloadFormatNoAuth &&
      format != kPayloadFormatNoLeases) {
    return corrupt("unknown payload format " + std::to_string(format));
  }
  std::string_view table_bytes;
  if (!read_section(r, table_bytes)) return corrupt("truncated or damaged idempotency table");
  auto table = IdempotencyTable::decode(table_bytes);
  if (!table) return corrupt("bad idempotency table");
  lease::LeaseTable leases;
  if (format != kPayloadFormatNoLeases) {
    std::string_view lease_bytes;
    if (!read_section(r, lease_bytes)) return corrupt("truncated or damaged lease table");
    auto decoded = lease::LeaseTable::decode(lease_bytes);
    if (!decoded) return corrupt("bad lease table");
    leases = std::move(*decoded);
  }
  auth::AuthStore auth;
  if (format == kPayloadFormat || format == kPayloadFormatNoAlarms) {
    std::string_view auth_bytes;
    if (!read_section(r, auth_bytes)) return corrupt("truncated or damaged auth store");
    auto decoded = auth::AuthStore::decode(auth_bytes);
    if (!decoded) return corrupt("bad auth store");
    auth = std::move(*decoded);
  }
  AlarmTable alarms;
  if (format == kPayloadFormat) {
    std::string_view alarm_bytes;
    if (!read_section(r, alarm_bytes)) return corrupt("truncated or damaged alarm set");
    auto decoded = AlarmTable::decode(alarm_bytes);
    if (!decoded) return corrupt("bad alarm set");
    alarms = std::move(*decoded);
  }
  // Attachments are derived from the keys (lessor.h, encode()), as they are
  // decoded. A key naming a lease the table lacks cannot be written (puts
  // check the table), so such a key is damage the checksums missed.
  bool orphan = false;
  auto store = mvcc::Store::decode_snapshot(r.rest(), store_options(), [&](const std::string& key, int64_t id) {
    if (!leases.exists(id)) orphan = true;
    leases.attach(id, key);
  });
  if (!store.is_ok()) return corrupt(store.status().message());
  if (orphan && format != kPayloadFormatNoLeases) {
    return corrupt("a key is attached to a lease the snapshot lacks");
  }
  return RestoredState{std::move(store).value(), std::move(*table), std::move(leases),
                       std::move(auth), std::move(alarms)};
}

void KvStateMachine::restore(RestoredState state, uint64_t index) {
  {
    std::unique_lock lock(mu_);
    KV_CHECK(!snapshotting_, "restore during a snapshot");
    std::swap(store_, state.store);
    std::swap(table_, state.table);
    std::swap(leases_, state.leases);
    std::swap(auth_, state.auth);
    std::swap(alarms_, state.alarms);
    applied_ = index;
    ++restores_;
    if (hooks_.on_restore) hooks_.on_restore(store_.revision());
    // Users may be gone or have new passwords: clients authenticate again.
    if (auth_hooks_.on_all_invalidated) auth_hooks_.on_all_invalidated();
  }
  // The old state (in `state` now) is freed here, outside the lock: freeing
  // a million keys takes a while.
}

void KvStateMachine::restore_legacy(const std::map<std::string, std::string, std::less<>>& map,
                                    uint64_t index) {
  RestoredState state{mvcc::Store(store_options()), IdempotencyTable(), lease::LeaseTable(),
                      auth::AuthStore(), AlarmTable()};
  for (const auto& [k, v] : map) {
    mvcc::PutRequest p;
    p.key = k;
    p.value = v;
    // An empty key cannot be put (etcd's rule); CKVSNAP1 never held one
    // from the seed API, which refuses them.
    (void)state.store.put(p);
  }
  restore(std::move(state), index);
}

}  // namespace ckv::fsm
