// Command and response codecs (see command.h for the layouts and the rules).
#include "fsm/command.h"

#include <algorithm>
#include <initializer_list>
#include <memory>
#include <utility>

#include "auth/auth_store.h"
#include "common/bytes.h"

namespace ckv::fsm {

namespace {

constexpr uint8_t kLegacyFormat = 1;
constexpr uint8_t kCommandFormatNoCaller = 2;
constexpr uint8_t kCommandFormat = 3;
constexpr uint8_t kFlagSystem = 1;
constexpr uint8_t kResponseFormat = 1;

enum : uint8_t { kLegacySet = 1, kLegacyDelete = 2 };
enum : uint8_t {
  kKindPut = 1,
  kKindDelete = 2,
  kKindTxn = 3,
  kKindCompaction = 4,
  kKindLeaseGrant = 5,
  kKindLeaseRevoke = 6,
  kKindAuth = 7,
  kKindAlarm = 8,
};
enum : uint8_t { kOpNone = 0, kOpRange = 1, kOpPut = 2, kOpDelete = 3, kOpTxn = 4 };
// Response ops: a null nested txn response (never produced by the store) is kRespNullTxn.
enum : uint8_t { kRespRange = 1, kRespPut = 2, kRespDelete = 3, kRespTxn = 4, kRespNullTxn = 5 };

// Flag bits; any other bit set is refused, so every accepted input re-encodes to itself.
constexpr uint8_t kPutPrevKv = 1, kPutIgnoreValue = 2, kPutIgnoreLease = 4;
constexpr uint8_t kPutFlags = kPutPrevKv | kPutIgnoreValue | kPutIgnoreLease;
constexpr uint8_t kDeletePrevKv = 1;
constexpr uint8_t kRangeSerializable = 1, kRangeKeysOnly = 2, kRangeCountOnly = 4;
constexpr uint8_t kRangeFlags = kRangeSerializable | kRangeKeysOnly | kRangeCountOnly;

// ---------------------------------------------------------------------------
// Writing.

void put_i64(std::string& out, int64_t v) { put_u64le(out, static_cast<uint64_t>(v)); }
void put_i32(std::string& out, int32_t v) { put_u32le(out, static_cast<uint32_t>(v)); }
void put_count(std::string& out, size_t n) { put_u32le(out, static_cast<uint32_t>(n)); }

void put_range(std::string& out, const mvcc::RangeRequest& r) {
  put_string32(out, r.key);
  put_string32(out, r.range_end);
  put_i64(out, r.limit);
  put_i64(out, r.revision);
  put_i32(out, static_cast<int32_t>(r.sort_order));
  put_i32(out, static_cast<int32_t>(r.sort_target));
  put_u8(out, static_cast<uint8_t>((r.serializable ? kRangeSerializable : 0) |
                                   (r.keys_only ? kRangeKeysOnly : 0) |
                                   (r.count_only ? kRangeCountOnly : 0)));
  put_i64(out, r.min_mod_revision);
  put_i64(out, r.max_mod_revision);
  put_i64(out, r.min_create_revision);
  put_i64(out, r.max_create_revision);
}

void put_put(std::string& out, const mvcc::PutRequest& p) {
  put_string32(out, p.key);
  put_string32(out, p.value);
  put_i64(out, p.lease);
  put_u8(out, static_cast<uint8_t>((p.prev_kv ? kPutPrevKv : 0) |
                                   (p.ignore_value ? kPutIgnoreValue : 0) |
                                   (p.ignore_lease ? kPutIgnoreLease : 0)));
}

void put_delete(std::string& out, const mvcc::DeleteRangeRequest& d) {
  put_string32(out, d.key);
  put_string32(out, d.range_end);
  put_u8(out, d.prev_kv ? kDeletePrevKv : 0);
}

void put_compare(std::string& out, const mvcc::Compare& c) {
  using T = mvcc::Compare::CompareTarget;
  put_i32(out, static_cast<int32_t>(c.result));
  put_i32(out, static_cast<int32_t>(c.target));
  put_string32(out, c.key);
  put_string32(out, c.range_end);
  // Only the target_union alternative the target names (the store reads no other).
  switch (c.target) {
    case T::kVersion:
      put_i64(out, c.version);
      break;
    case T::kCreate:
      put_i64(out, c.create_revision);
      break;
    case T::kMod:
      put_i64(out, c.mod_revision);
      break;
    case T::kValue:
      put_string32(out, c.value);
      break;
    case T::kLease:
      put_i64(out, c.lease);
      break;
  }
}

void put_txn(std::string& out, const mvcc::TxnRequest& t);

void put_ops(std::string& out, const std::vector<mvcc::RequestOp>& ops) {
  put_count(out, ops.size());
  for (const mvcc::RequestOp& op : ops) {
    if (auto* r = std::get_if<mvcc::RangeRequest>(&op.request)) {
      put_u8(out, kOpRange);
      put_range(out, *r);
    } else if (auto* p = std::get_if<mvcc::PutRequest>(&op.request)) {
      put_u8(out, kOpPut);
      put_put(out, *p);
    } else if (auto* d = std::get_if<mvcc::DeleteRangeRequest>(&op.request)) {
      put_u8(out, kOpDelete);
      put_delete(out, *d);
    } else if (auto* t = std::get_if<std::shared_ptr<const mvcc::TxnRequest>>(&op.request);
               t && *t) {
      put_u8(out, kOpTxn);
      put_txn(out, **t);
    } else {
      put_u8(out, kOpNone);  // etcd answers it with "key not found"; the store does the same
    }
  }
}

void put_txn(std::string& out, const mvcc::TxnRequest& t) {
  put_count(out, t.compare.size());
  for (const mvcc::Compare& c : t.compare) put_compare(out, c);
  put_ops(out, t.success);
  put_ops(out, t.failure);
}

void put_auth(std::string& out, const auth::AuthRequest& a) {
  put_u8(out, static_cast<uint8_t>(a.op));
  put_string32(out, a.name);
  put_string32(out, a.role);
  put_string32(out, a.secret);
  put_u8(out, a.no_password ? 1 : 0);
  put_i32(out, static_cast<int32_t>(a.perm.type));
  put_string32(out, a.perm.key);
  put_string32(out, a.perm.range_end);
}

void put_kv(std::string& out, const mvcc::KeyValue& kv) {
  put_string32(out, kv.key);
  put_i64(out, kv.create_revision);
  put_i64(out, kv.mod_revision);
  put_i64(out, kv.version);
  put_string32(out, kv.value);
  put_i64(out, kv.lease);
}

void put_kvs(std::string& out, const std::vector<mvcc::KeyValue>& kvs) {
  put_count(out, kvs.size());
  for (const auto& kv : kvs) put_kv(out, kv);
}

void put_txn_response(std::string& out, const mvcc::TxnResponse& t);

void put_put_response(std::string& out, const mvcc::PutResponse& p) {
  put_i64(out, p.header.revision);
  put_u8(out, p.prev_kv ? 1 : 0);
  if (p.prev_kv) put_kv(out, *p.prev_kv);
}

void put_delete_response(std::string& out, const mvcc::DeleteRangeResponse& d) {
  put_i64(out, d.header.revision);
  put_i64(out, d.deleted);
  put_kvs(out, d.prev_kvs);
}

void put_txn_response(std::string& out, const mvcc::TxnResponse& t) {
  put_i64(out, t.header.revision);
  put_u8(out, t.succeeded ? 1 : 0);
  put_count(out, t.responses.size());
  for (const mvcc::ResponseOp& op : t.responses) {
    if (auto* r = std::get_if<mvcc::RangeResponse>(&op.response)) {
      put_u8(out, kRespRange);
      put_i64(out, r->header.revision);
      put_kvs(out, r->kvs);
      put_u8(out, r->more ? 1 : 0);
      put_i64(out, r->count);
    } else if (auto* p = std::get_if<mvcc::PutResponse>(&op.response)) {
      put_u8(out, kRespPut);
      put_put_response(out, *p);
    } else if (auto* d = std::get_if<mvcc::DeleteRangeResponse>(&op.response)) {
      put_u8(out, kRespDelete);
      put_delete_response(out, *d);
    } else {
      const auto& n = std::get<std::shared_ptr<mvcc::TxnResponse>>(op.response);
      if (n) {
        put_u8(out, kRespTxn);
        put_txn_response(out, *n);
      } else {
        put_u8(out, kRespNullTxn);
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Reading: every function returns false on input this version cannot read.

bool get_i64(ByteReader& r, int64_t& v) {
  uint64_t u = 0;
  if (!r.u64le(u)) return false;
  v = static_cast<int64_t>(u);
  return true;
}

bool get_i32(ByteReader& r, int32_t& v) {
  uint32_t u = 0;
  if (!r.u32le(u)) return false;
  v = static_cast<int32_t>(u);
  return true;
}

bool get_bool(ByteReader& r, bool& v) {
  uint8_t b = 0;
  if (!r.u8(b) || b > 1) return false;
  v = b == 1;
  return true;
}

bool get_range(ByteReader& r, mvcc::RangeRequest& q) {
  int32_t order = 0, target = 0;
  uint8_t flags = 0;
  if (!r.string32(q.key) || !r.string32(q.range_end) || !get_i64(r, q.limit) ||
      !get_i64(r, q.revision) || !get_i32(r, order) || !get_i32(r, target) || !r.u8(flags) ||
      (flags & ~kRangeFlags) != 0 || !get_i64(r, q.min_mod_revision) ||
      !get_i64(r, q.max_mod_revision) || !get_i64(r, q.min_create_revision) ||
      !get_i64(r, q.max_create_revision)) {
    return false;
  }
  // Values outside the enums are kept: the store answers them as etcd does.
  q.sort_order = static_cast<mvcc::SortOrder>(order);
  q.sort_target = static_cast<mvcc::SortTarget>(target);
  q.serializable = (flags & kRangeSerializable) != 0;
  q.keys_only = (flags & kRangeKeysOnly) != 0;
  q.count_only = (flags & kRangeCountOnly) != 0;
  return true;
}

bool get_put(ByteReader& r, mvcc::PutRequest& p) {
  uint8_t flags = 0;
  if (!r.string32(p.key) || !r.string32(p.value) || !get_i64(r, p.lease) || !r.u8(flags) ||
      (flags & ~kPutFlags) != 0) {
    return false;
  }
  p.prev_kv = (flags & kPutPrevKv) != 0;
  p.ignore_value = (flags & kPutIgnoreValue) != 0;
  p.ignore_lease = (flags & kPutIgnoreLease) != 0;
  return true;
}

bool get_delete(ByteReader& r, mvcc::DeleteRangeRequest& d) {
  uint8_t flags = 0;
  if (!r.string32(d.key) || !r.string32(d.range_end) || !r.u8(flags) ||
      (flags & ~kDeletePrevKv) != 0)
    return false;
  d.prev_kv = flags == kDeletePrevKv;
  return true;
}

bool get_compare(ByteReader& r, mvcc::Compare& c) {
  using T = mvcc::Compare::CompareTarget;
  int32_t result = 0, target = 0;
  if (!get_i32(r, result) || !get_i32(r, target) || !r.string32(c.key) || !r.string32(c.range_end))
    return false;
  c.result = static_cast<mvcc::Compare::CompareResult>(result);
  c.target = static_cast<T>(target);
  switch (c.target) {
    case T::kVersion:
      return get_i64(r, c.version);
    case T::kCreate:
      return get_i64(r, c.create_revision);
    case T::kMod:
      return get_i64(r, c.mod_revision);
    case T::kValue:
      return r.string32(c.value);
    case T::kLease:
      return get_i64(r, c.lease);
  }
  return true;  // a target outside the enum carries no value (as encoded)
}

bool get_txn(ByteReader& r, mvcc::TxnRequest& t, size_t depth);

bool get_ops(ByteReader& r, std::vector<mvcc::RequestOp>& ops, size_t depth) {
  uint32_t n = 0;
  if (!r.u32le(n)) return false;
  for (uint32_t i = 0; i < n; ++i) {
    uint8_t kind = 0;
    if (!r.u8(kind)) return false;
    mvcc::RequestOp& op = ops.emplace_back();
    switch (kind) {
      case kOpNone:
        break;
      case kOpRange:
        if (!get_range(r, op.request.emplace<mvcc::RangeRequest>())) return false;
        break;
      case kOpPut:
        if (!get_put(r, op.request.emplace<mvcc::PutRequest>())) return false;
        break;
      case kOpDelete:
        if (!get_delete(r, op.request.emplace<mvcc::DeleteRangeRequest>())) return false;
        break;
      case kOpTxn: {
        if (depth >= kMaxTxnNestingDepth) return false;
        auto nested = std::make_shared<mvcc::TxnRequest>();
        if (!get_txn(r, *nested, depth + 1)) return false;
        op.request = std::shared_ptr<const mvcc::TxnRequest>(std::move(nested));
        break;
      }
      default:
        return false;
    }
  }
  return true;
}

// depth: the nesting depth of t itself (1 for a txn directly in a command).
bool get_txn(ByteReader& r, mvcc::TxnRequest& t, size_t depth) {
  uint32_t n = 0;
  if (!r.u32le(n)) return false;
  for (uint32_t i = 0; i < n; ++i) {
    if (!get_compare(r, t.compare.emplace_back())) return false;
  }
  return get_ops(r, t.success, depth) && get_ops(r, t.failure, depth);
}

bool get_auth(ByteReader& r, auth::AuthRequest& a) {
  uint8_t op = 0;
  int32_t type = 0;
  if (!r.u8(op) || op == 0 || op > auth::kMaxAuthOp || !r.string32(a.name, auth::kMaxNameBytes) ||
      !r.string32(a.role, auth::kMaxNameBytes) || !r.string32(a.secret, auth::kMaxSecretBytes) ||
      !get_bool(r, a.no_password) || !get_i32(r, type) || type < 0 ||
      type > static_cast<int32_t>(auth::PermType::kReadWrite) ||
      !r.string32(a.perm.key, auth::kMaxPermKeyBytes) ||
      !r.string32(a.perm.range_end, auth::kMaxPermKeyBytes)) {
    return false;
  }
  a.op = static_cast<auth::AuthOp>(op);
  a.perm.type = static_cast<auth::PermType>(type);
  return true;
}

// Only etcd's actions and types decode: any other byte is not an entry we wrote.
bool get_alarm_member(ByteReader& r, uint64_t& member_id, AlarmType& alarm) {
  int32_t type = 0;
  if (!r.u64le(member_id) || !get_i32(r, type) || type < 0 ||
      type > static_cast<int32_t>(AlarmType::kCorrupt)) {
    return false;
  }
  alarm = static_cast<AlarmType>(type);
  return true;
}

bool get_alarm(ByteReader& r, AlarmRequest& a) {
  uint8_t action = 0;
  if (!r.u8(action) || action > static_cast<uint8_t>(AlarmAction::kDeactivate)) return false;
  a.action = static_cast<AlarmAction>(action);
  return get_alarm_member(r, a.member_id, a.alarm);
}

bool get_alarm_response(ByteReader& r, AlarmResponse& a) {
  uint32_t n = 0;
  if (!get_i64(r, a.header.revision) || !r.u32le(n)) return false;
  for (uint32_t i = 0; i < n; ++i) {
    AlarmMember& m = a.alarms.emplace_back();
    if (!get_alarm_member(r, m.member_id, m.alarm)) return false;
  }
  return true;
}

bool get_kv(ByteReader& r, mvcc::KeyValue& kv) {
  return r.string32(kv.key) && get_i64(r, kv.create_revision) && get_i64(r, kv.mod_revision) &&
         get_i64(r, kv.version) && r.string32(kv.value) && get_i64(r, kv.lease);
}

bool get_kvs(ByteReader& r, std::vector<mvcc::KeyValue>& kvs) {
  uint32_t n = 0;
  if (!r.u32le(n)) return false;
  for (uint32_t i = 0; i < n; ++i) {
    if (!get_kv(r, kvs.emplace_back())) return false;
  }
  return true;
}

bool get_put_response(ByteReader& r, mvcc::PutResponse& p) {
  bool has_prev = false;
  if (!get_i64(r, p.header.revision) || !get_bool(r, has_prev)) return false;
  if (has_prev && !get_kv(r, p.prev_kv.emplace())) return false;
  return true;
}

bool get_delete_response(ByteReader& r, mvcc::DeleteRangeResponse& d) {
  return get_i64(r, d.header.revision) && get_i64(r, d.deleted) && get_kvs(r, d.prev_kvs);
}

bool get_txn_response(ByteReader& r, mvcc::TxnResponse& t, size_t depth) {
  uint32_t n = 0;
  if (!get_i64(r, t.header.revision) || !get_bool(r, t.succeeded) || !r.u32le(n)) return false;
  for (uint32_t i = 0; i < n; ++i) {
    uint8_t kind = 0;
    if (!r.u8(kind)) return false;
    mvcc::ResponseOp& op = t.responses.emplace_back();
    switch (kind) {
      case kRespRange: {
        auto& q = op.response.emplace<mvcc::RangeResponse>();
        if (!get_i64(r, q.header.revision) || !get_kvs(r, q.kvs) || !get_bool(r, q.more) ||
            !get_i64(r, q.count))
          return false;
        break;
      }
      case kRespPut:
        if (!get_put_response(r, op.response.emplace<mvcc::PutResponse>())) return false;
        break;
      case kRespDelete:
        if (!get_delete_response(r, op.response.emplace<mvcc::DeleteRangeResponse>())) return false;
        break;
      case kRespTxn: {
        if (depth >= kMaxTxnNestingDepth) return false;
        auto nested = std::make_shared<mvcc::TxnResponse>();
        if (!get_txn_response(r, *nested, depth + 1)) return false;
        op.response = std::move(nested);
        break;
      }
      case kRespNullTxn:
        op.response = std::shared_ptr<mvcc::TxnResponse>();
        break;
      default:
        return false;
    }
  }
  return true;
}

size_t depth_of(const mvcc::TxnRequest& t) {
  size_t deepest = 0;
  for (const auto* ops : {&t.success, &t.failure}) {
    for (const mvcc::RequestOp& op : *ops) {
      if (auto* n = std::get_if<std::shared_ptr<const mvcc::TxnRequest>>(&op.request); n && *n) {
        deepest = std::max(deepest, depth_of(**n));
      }
    }
  }
  return deepest + 1;
}

std::optional<Command> decode_legacy(ByteReader& r) {
  uint8_t type = 0;
  uint32_t key_len = 0;
  std::string key;
  if (!r.u8(type) || !r.u32le(key_len) || !r.bytes(key_len, key)) return std::nullopt;
  Command c;
  if (type == kLegacySet) {
    mvcc::PutRequest p;
    p.key = std::move(key);
    p.value.assign(r.rest());
    c.request = std::move(p);
  } else if (type == kLegacyDelete && r.at_end()) {
    mvcc::DeleteRangeRequest d;
    d.key = std::move(key);
    c.request = std::move(d);
  } else {
    return std::nullopt;
  }
  return c;
}

}  // namespace

size_t txn_depth(const Request& r) {
  const auto* t = std::get_if<mvcc::TxnRequest>(&r);
  return t == nullptr ? 0 : depth_of(*t);
}

std::string encode_command(const Command& c) {
  std::string out;
  const bool format3 = c.system || c.caller.revision != 0 || !c.caller.user.empty() ||
                       std::holds_alternative<auth::AuthRequest>(c.request);
  put_u8(out, format3 ? kCommandFormat : kCommandFormatNoCaller);
  put_string32(out, c.idempotency_key);
  put_i64(out, c.proposed_at_ms);
  if (format3) {
    put_u8(out, c.system ? kFlagSystem : 0);
    put_string32(out, c.caller.user);
    put_u64le(out, c.caller.revision);
  }
  if (auto* p = std::get_if<mvcc::PutRequest>(&c.request)) {
    out.reserve(out.size() + 32 + p->key.size() + p->value.size());
    put_u8(out, kKindPut);
    put_put(out, *p);
  } else if (auto* d = std::get_if<mvcc::DeleteRangeRequest>(&c.request)) {
    put_u8(out, kKindDelete);
    put_delete(out, *d);
  } else if (auto* t = std::get_if<mvcc::TxnRequest>(&c.request)) {
    put_u8(out, kKindTxn);
    put_txn(out, *t);
  } else if (auto* k = std::get_if<mvcc::CompactionRequest>(&c.request)) {
    put_u8(out, kKindCompaction);
    put_i64(out, k->revision);
    put_u8(out, k->physical ? 1 : 0);
  } else if (auto* g = std::get_if<lease::GrantRequest>(&c.request)) {
    put_u8(out, kKindLeaseGrant);
    put_i64(out, g->id);
    put_i64(out, g->ttl);
  } else if (auto* a = std::get_if<auth::AuthRequest>(&c.request)) {
    put_u8(out, kKindAuth);
    put_auth(out, *a);
  } else if (auto* al = std::get_if<AlarmRequest>(&c.request)) {
    put_u8(out, kKindAlarm);
    put_u8(out, static_cast<uint8_t>(al->action));
    put_u64le(out, al->member_id);
    put_i32(out, static_cast<int32_t>(al->alarm));
  } else {
    put_u8(out, kKindLeaseRevoke);
    put_i64(out, std::get<lease::RevokeRequest>(c.request).id);
  }
  return out;
}

std::optional<Command> decode_command(std::string_view data) {
  ByteReader r(data);
  uint8_t format = 0;
  if (!r.u8(format)) return std::nullopt;
  if (format == kLegacyFormat) return decode_legacy(r);
  if (format != kCommandFormat && format != kCommandFormatNoCaller) return std::nullopt;
  Command c;
  uint8_t kind = 0;
  if (!r.string32(c.idempotency_key, kMaxIdempotencyKeyBytes) || !get_i64(r, c.proposed_at_ms)) {
    return std::nullopt;
  }
  if (format == kCommandFormat) {
    uint8_t flags = 0;
    if (!r.u8(flags) || (flags & ~kFlagSystem) != 0 ||
        !r.string32(c.caller.user, auth::kMaxNameBytes) || !r.u64le(c.caller.revision)) {
      return std::nullopt;
    }
    c.system = (flags & kFlagSystem) != 0;
  }
  if (!r.u8(kind)) return std::nullopt;
  bool ok = false;
  switch (kind) {
    case kKindPut:
      ok = get_put(r, c.request.emplace<mvcc::PutRequest>());
      break;
    case kKindDelete:
      ok = get_delete(r, c.request.emplace<mvcc::DeleteRangeRequest>());
      break;
    case kKindTxn:
      ok = get_txn(r, c.request.emplace<mvcc::TxnRequest>(), 1);
      break;
    case kKindCompaction: {
      auto& k = c.request.emplace<mvcc::CompactionRequest>();
      ok = get_i64(r, k.revision) && get_bool(r, k.physical);
      break;
    }
    case kKindLeaseGrant: {
      auto& g = c.request.emplace<lease::GrantRequest>();
      ok = get_i64(r, g.id) && get_i64(r, g.ttl);
      break;
    }
    case kKindLeaseRevoke:
      ok = get_i64(r, c.request.emplace<lease::RevokeRequest>().id);
      break;
    case kKindAuth:
      ok = format == kCommandFormat && get_auth(r, c.request.emplace<auth::AuthRequest>());
      break;
    case kKindAlarm:
      ok = get_alarm(r, c.request.emplace<AlarmRequest>());
      break;
    default:
      break;
  }
  if (!ok || !r.at_end()) return std::nullopt;
  // Re-encoding gives the same bytes: a format-3 command always has a
  // reason to be one (a caller, the system flag or an auth change).
  if (format == kCommandFormat && !c.system && c.caller.revision == 0 && c.caller.user.empty() &&
      !std::holds_alternative<auth::AuthRequest>(c.request)) {
    return std::nullopt;
  }
  return c;
}

std::string encode_response(const Response& resp) {
  std::string out;
  put_u8(out, kResponseFormat);
  if (auto* p = std::get_if<mvcc::PutResponse>(&resp)) {
    put_u8(out, kKindPut);
    put_put_response(out, *p);
  } else if (auto* d = std::get_if<mvcc::DeleteRangeResponse>(&resp)) {
    put_u8(out, kKindDelete);
    put_delete_response(out, *d);
  } else if (auto* t = std::get_if<mvcc::TxnResponse>(&resp)) {
    put_u8(out, kKindTxn);
    put_txn_response(out, *t);
  } else if (auto* k = std::get_if<mvcc::CompactionResponse>(&resp)) {
    put_u8(out, kKindCompaction);
    put_i64(out, k->header.revision);
  } else if (auto* g = std::get_if<lease::GrantResponse>(&resp)) {
    put_u8(out, kKindLeaseGrant);
    put_i64(out, g->header.revision);
    put_i64(out, g->id);
    put_i64(out, g->ttl);
  } else if (auto* a = std::get_if<auth::AuthResponse>(&resp)) {
    put_u8(out, kKindAuth);
    put_i64(out, a->header.revision);
  } else if (auto* al = std::get_if<AlarmResponse>(&resp)) {
    put_u8(out, kKindAlarm);
    put_i64(out, al->header.revision);
    put_count(out, al->alarms.size());
    for (const AlarmMember& m : al->alarms) {
      put_u64le(out, m.member_id);
      put_i32(out, static_cast<int32_t>(m.alarm));
    }
  } else {
    put_u8(out, kKindLeaseRevoke);
    put_i64(out, std::get<lease::RevokeResponse>(resp).header.revision);
  }
  return out;
}

std::optional<Response> decode_response(std::string_view data) {
  ByteReader r(data);
  uint8_t format = 0, kind = 0;
  if (!r.u8(format) || format != kResponseFormat || !r.u8(kind)) return std::nullopt;
  Response resp;
  bool ok = false;
  switch (kind) {
    case kKindPut:
      ok = get_put_response(r, resp.emplace<mvcc::PutResponse>());
      break;
    case kKindDelete:
      ok = get_delete_response(r, resp.emplace<mvcc::DeleteRangeResponse>());
      break;
    case kKindTxn:
      ok = get_txn_response(r, resp.emplace<mvcc::TxnResponse>(), 1);
      break;
    case kKindCompaction:
      ok = get_i64(r, resp.emplace<mvcc::CompactionResponse>().header.revision);
      break;
    case kKindLeaseGrant: {
      auto& g = resp.emplace<lease::GrantResponse>();
      ok = get_i64(r, g.header.revision) && get_i64(r, g.id) && get_i64(r, g.ttl);
      break;
    }
    case kKindLeaseRevoke:
      ok = get_i64(r, resp.emplace<lease::RevokeResponse>().header.revision);
      break;
    case kKindAuth:
      ok = get_i64(r, resp.emplace<auth::AuthResponse>().header.revision);
      break;
    case kKindAlarm:
      ok = get_alarm_response(r, resp.emplace<AlarmResponse>());
      break;
    default:
      break;
  }
  if (!ok || !r.at_end()) return std::nullopt;
  return resp;
}

std::string encode_legacy_set(std::string_view key, std::string_view value) {
  std::string out;
  put_u8(out, kLegacyFormat);
  put_u8(out, kLegacySet);
  put_u32le(out, static_cast<uint32_t>(key.size()));
  out += key;
  out += value;
  return out;
}

std::string encode_legacy_delete(std::string_view key) {
  std::string out;
  put_u8(out, kLegacyFormat);
  put_u8(out, kLegacyDelete);
  put_u32le(out, static_cast<uint32_t>(key.size()));
  out += key;
  return out;
}

}  // namespace ckv::fsm
