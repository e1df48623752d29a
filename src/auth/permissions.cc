// The permission checker (see permissions.h).
#include "auth/permissions.h"

#include <algorithm>
#include <optional>
#include <string>

namespace ckv::auth {

namespace {

// [begin, end), end nullopt = unbounded.
struct Interval {
  std::string_view begin;
  std::optional<std::string> end;
};

bool grants(PermType have, PermType want) { return have == want || have == PermType::kReadWrite; }

// etcd's reading of a grant's or a request's range_end.
Interval interval_of(std::string_view key, std::string_view range_end) {
  Interval iv{key, std::nullopt};
  if (range_end.empty()) {
    iv.end = std::string(key) + '\0';  // the key alone: [key, key\0)
  } else if (range_end != std::string_view("\0", 1)) {
    iv.end = std::string(range_end);
  }
  return iv;
}

}  // namespace

bool covers(const std::vector<const Permission*>& perms, PermType want, std::string_view key,
            std::string_view range_end) {
  std::vector<Interval> ivs;
  for (const Permission* p : perms) {
    if (!grants(p->type, want)) continue;
    Interval iv = interval_of(p->key, p->range_end);
    if (iv.end && *iv.end <= iv.begin) continue;  // an empty grant covers nothing
    ivs.push_back(std::move(iv));
  }
  if (range_end.empty()) {
    // One key: a grant must hold it.
    return std::any_of(ivs.begin(), ivs.end(), [&](const Interval& iv) {
      return iv.begin <= key && (!iv.end || key < *iv.end);
    });
  }
  const Interval want_iv = interval_of(key, range_end);
  if (want_iv.end && *want_iv.end <= want_iv.begin) return false;
  std::sort(ivs.begin(), ivs.end(),
            [](const Interval& a, const Interval& b) { return a.begin < b.begin; });
  // Sweep: `reached` is how far from the request's start the grants seen so
  // far cover without a gap.
  std::string reached(want_iv.begin);
  for (const Interval& iv : ivs) {
    if (iv.begin > reached) break;  // a gap at `reached`
    if (!iv.end) return true;       // covers everything from here on
    if (*iv.end > reached) reached = *iv.end;
    if (want_iv.end && reached >= *want_iv.end) return true;
  }
  return false;
}

}  // namespace ckv::auth
