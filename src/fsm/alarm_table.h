// The replicated alarm set (etcd's Maintenance.Alarm): which member raised which alarm; pure, no I/O.
//
// Part of the state machine (fsm/kv_state_machine.h), like etcd's alarm
// store: alarms are raised and cleared by commands in the Raft log, so every
// replica holds the same set, and they travel in snapshots (payload format
// 4, written while any is raised). Their effect is applied by the state machine at apply time, on every
// replica alike: while NOSPACE is raised, writes that grow the store are
// refused with etcd's "etcdserver: mvcc: database space exceeded"; while
// CORRUPT is raised, every KV and lease write is refused with "etcdserver:
// corrupt cluster" (reads, auth changes and alarm changes still work).
//
// Not thread safe: the state machine's lock guards it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "mvcc/types.h"

namespace ckv::fsm {

// etcd's AlarmType values (rpc.proto): NONE in a request means "any type".
enum class AlarmType : int32_t { kNone = 0, kNoSpace = 1, kCorrupt = 2 };
// etcd's AlarmRequest.AlarmAction values.
enum class AlarmAction : int32_t { kGet = 0, kActivate = 1, kDeactivate = 2 };

struct AlarmMember {
  uint64_t member_id = 0;
  AlarmType alarm = AlarmType::kNone;
  auto operator<=>(const AlarmMember&) const = default;  // NOLINT(modernize-use-nullptr): clang-tidy 14 misreads a defaulted <=>
};

struct AlarmRequest {
  AlarmAction action = AlarmAction::kGet;
  uint64_t member_id = 0;
  AlarmType alarm = AlarmType::kNone;
  bool operator==(const AlarmRequest&) const = default;
};

struct AlarmResponse {
  mvcc::ResponseHeader header;
  std::vector<AlarmMember> alarms;
  bool operator==(const AlarmResponse&) const = default;
};

// etcd's texts: a NOSPACE alarm's refusal is kErrNoSpace (etcd/server_errors.h
// has the same text for the gRPC layer); a CORRUPT alarm's is this.
inline constexpr const char* kErrAlarmNoSpace = "etcdserver: mvcc: database space exceeded";
inline constexpr const char* kErrCorrupt = "etcdserver: corrupt cluster";
// Alarms the set holds at most: two types for each of node::kMaxMembers
// members. An ACTIVATE past it (only ever a hostile or broken client naming
// made-up member ids) is refused, so the set, and every snapshot, stays bounded.
inline constexpr size_t kMaxAlarms = 2048;

// "NONE", "NOSPACE", "CORRUPT" (etcd's enum names), or the number.
std::string alarm_name(AlarmType t);
// etcd's Alarm String() for Maintenance.Status's errors and etcdctl's
// alarm list: "memberID:<id> alarm:<NAME> " (a zero field left out, as etcd's).
std::string describe(const AlarmMember& a);

class AlarmTable {
 public:
  // etcd's applierV3backend.Alarm: GET lists the alarms of the type (all for
  // NONE); ACTIVATE adds (member, type) and answers it (also when it was
  // raised already; etcd 3.4 takes NONE too, an alarm without effect);
  // DEACTIVATE removes it and answers it, or answers nothing if it was not
  // raised. ACTIVATE of an unknown type, or past kMaxAlarms, is kInvalid and
  // changes nothing.
  Result<std::vector<AlarmMember>> apply(const AlarmRequest& r);
  // The alarms of type t (all for kNone), in (member, type) order.
  std::vector<AlarmMember> get(AlarmType t) const;
  bool active(AlarmType t) const;
  bool empty() const { return alarms_.empty(); }
  size_t size() const { return alarms_.size(); }

  // u32 count, then per alarm u64 member id, i32 type; in order.
  std::string encode() const;
  // nullopt for anything encode() cannot have written (bad type, unsorted or
  // duplicate entries, more than kMaxAlarms, trailing bytes).
  static std::optional<AlarmTable> decode(std::string_view bytes);

  bool operator==(const AlarmTable&) const = default;

 private:
  std::set<AlarmMember> alarms_;
};

}  // namespace ckv::fsm
