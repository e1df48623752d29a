// The replicated alarm set (see alarm_table.h).
#include "fsm/alarm_table.h"

#include "common/bytes.h"

namespace ckv::fsm {

namespace {

bool known_type(int32_t t) { return t >= 0 && t <= static_cast<int32_t>(AlarmType::kCorrupt); }

}  // namespace

std::string alarm_name(AlarmType t) {
  switch (t) {
    case AlarmType::kNone: return "NONE";
    case AlarmType::kNoSpace: return "NOSPACE";
    case AlarmType::kCorrupt: return "CORRUPT";
  }
  return std::to_string(static_cast<int32_t>(t));
}

std::string describe(const AlarmMember& a) {
  // gogoproto's CompactTextString, which leaves out fields at their zero value.
  std::string out;
  if (a.member_id != 0) out += "memberID:" + std::to_string(a.member_id) + " ";
  if (a.alarm != AlarmType::kNone) out += "alarm:" + alarm_name(a.alarm) + " ";
  return out;
}

Result<std::vector<AlarmMember>> AlarmTable::apply(const AlarmRequest& r) {
  const AlarmMember m{r.member_id, r.alarm};
  switch (r.action) {
    case AlarmAction::kGet:
      return get(r.alarm);
    case AlarmAction::kActivate:
      if (!known_type(static_cast<int32_t>(r.alarm))) {
        return Status(StatusCode::kInvalid, "unknown alarm type " + alarm_name(r.alarm));
      }
      if (!alarms_.contains(m) && alarms_.size() >= kMaxAlarms) {
        return Status(StatusCode::kInvalid,
                      "too many alarms (limit " + std::to_string(kMaxAlarms) + "): disarm some first");
      }
      alarms_.insert(m);
      return std::vector<AlarmMember>{m};
    case AlarmAction::kDeactivate:
      if (alarms_.erase(m) == 0) return std::vector<AlarmMember>{};
      return std::vector<AlarmMember>{m};
  }
  return Status(StatusCode::kInvalid, "unknown alarm action " + std::to_string(static_cast<int32_t>(r.action)));
}

std::vector<AlarmMember> AlarmTable::get(AlarmType t) const {
  std::vector<AlarmMember> out;
  for (const AlarmMember& a : alarms_) {
    if (t == AlarmType::kNone || a.alarm == t) out.push_back(a);
  }
  return out;
}

bool AlarmTable::active(AlarmType t) const {
  for (const AlarmMember& a : alarms_) {
    if (a.alarm == t) return true;
  }
  return false;
}

std::string AlarmTable::encode() const {
  std::string out;
  put_u32le(out, static_cast<uint32_t>(alarms_.size()));
  for (const AlarmMember& a : alarms_) {
    put_u64le(out, a.member_id);
    put_u32le(out, static_cast<uint32_t>(a.alarm));
  }
  return out;
}

std::optional<AlarmTable> AlarmTable::decode(std::string_view bytes) {
  ByteReader r(bytes);
  uint32_t n = 0;
  if (!r.u32le(n) || n > kMaxAlarms) return std::nullopt;
  AlarmTable t;
  for (uint32_t i = 0; i < n; ++i) {
    uint64_t id = 0;
    uint32_t type = 0;
    if (!r.u64le(id) || !r.u32le(type) || !known_type(static_cast<int32_t>(type))) return std::nullopt;
    const AlarmMember m{id, static_cast<AlarmType>(type)};
    // Sorted and unique, as encode() writes them: one encoding per table.
    if (!t.alarms_.empty() && !(*t.alarms_.rbegin() < m)) return std::nullopt;
    t.alarms_.insert(t.alarms_.end(), m);
  }
  if (!r.at_end()) return std::nullopt;
  return t;
}

}  // namespace ckv::fsm
