// The permission checker: does a set of granted key ranges cover a requested key or range (etcd 3.4's range_perm_cache semantics).
//
// A grant on key alone covers [key, key+"\0"); on [key, range_end) that
// range; with range_end "\0" every key from key on. A request for one key
// (range_end empty) needs one grant holding it; a request for a range
// needs the union of the grants to cover all of it (grants may overlap or
// abut: [a,c) plus [c,e) cover [b,d)). An empty requested range (range_end
// at or before key) is covered by nothing, as in etcd.
// Pure functions; no state.
#pragma once

#include <string_view>
#include <vector>

#include "auth/types.h"

namespace ckv::auth {

// Whether perms grant `want` (kRead or kWrite; kReadWrite grants both) on
// [key, range_end) as described above.
bool covers(const std::vector<const Permission*>& perms, PermType want, std::string_view key,
            std::string_view range_end);

}  // namespace ckv::auth
