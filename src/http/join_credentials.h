// The credentials a joining node sends with its /join requests (-join-auth-file): HTTP Basic from a file.
//
// With auth enabled, /join needs root (docs/security.md). A node started
// with -join and -join-auth-file=PATH sends `Authorization: Basic ...` made
// from the file's first line, "user:password", on its -join requests and
// when it registers its API address with the leader. A file, not a flag
// value, so the password is not in `ps` or the unit's command line; a file
// that others can read is used with a warning, as ssh warns of a key.
#pragma once

#include <string>

#include "common/status.h"

namespace ckv::http {

// Longest credentials file read: a user name and a password (auth/types.h
// limits each to 4096 bytes) and a newline.
inline constexpr size_t kMaxJoinAuthFileBytes = 8192 + 2;

// The Authorization header value for the file at `path`, or kInvalid /
// kNotFound naming the file and what is wrong (no ':' on the first line, an
// empty user, too long). Sets `readable_by_others` when group or other may
// read the file.
Result<std::string> join_authorization_from_file(const std::string& path, bool& readable_by_others);

}  // namespace ckv::http
