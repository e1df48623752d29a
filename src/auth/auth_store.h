// The replicated auth state: users, roles, permissions, the enabled flag and the auth revision; pure and deterministic.
//
// Every node applies the same AuthRequests in log order (fsm/kv_state_machine.h
// holds one AuthStore) and so holds the same state; apply() reads no clock
// and does no hashing (passwords arrive hashed: auth/password.h). Rules are
// etcd 3.4's (auth/store.go):
//   - enable needs the user root holding the role root (kErrRootUserNotExist,
//     kErrRootRoleNotExist); enabling twice is a no-op; enabling sets
//     forward_key() from the request's secret;
//   - with auth enabled, root cannot be deleted, lose the role root, and the
//     role root cannot be deleted (kErrInvalidAuthMgmt);
//   - the role root needs no RoleAdd: granting it to a user is always allowed;
//   - every change bumps revision() (enable does not, as in etcd), so a
//     request checked at an older revision is refused at apply
//     (kErrAuthOldRevision) and the client retries with fresh credentials;
//   - granting a role twice or a permission on the same (key, range_end)
//     again updates in place.
// The caller of every mutation except Authenticate must be root once auth is
// enabled (check_admin; etcd's needAdminPermission), checked by the state
// machine before apply().
//
// Thread safety: none; the state machine's lock guards it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/types.h"
#include "common/status.h"

namespace ckv::auth {

// Longest user or role name accepted (bytes): names are logged and carried
// in every command of their user; etcd has no limit, a name this long is a
// mistake or an attack.
inline constexpr size_t kMaxNameBytes = 4096;
// Longest key or range end in a permission: the MVCC store's key limit.
inline constexpr size_t kMaxPermKeyBytes = size_t{64} * 1024;
// Longest stored password hash (libsodium's argon2id strings are ~100 bytes).
inline constexpr size_t kMaxSecretBytes = 256;
// The forwarding key's size (see forward_key()).
inline constexpr size_t kForwardKeyBytes = 32;

// What a change does, for the log: names, roles, keys; never the secret.
std::string describe(const AuthRequest& r);

class AuthStore {
 public:
  bool enabled() const { return enabled_; }
  uint64_t revision() const { return revision_; }
  // A key only members know: kForwardKeyBytes random bytes the proposer of
  // an Enable drew (its secret), cleared by Disable, empty if the Enable
  // came from an older build. A member forwarding a caller whose identity
  // it resolved itself (a TLS client certificate's CN, which the leader
  // cannot see) vouches for it with an HMAC under this key
  // (auth/forwarded_caller.h); nobody outside the cluster can, since no API
  // returns it and only the log, snapshots and data dirs hold it.
  const std::string& forward_key() const { return forward_key_; }

  // Applies one change; its Status is etcd's answer (ok, or one of
  // types.h's kErr texts). Authenticate changes nothing: ok means the
  // token may be issued (auth enabled, the user exists and has a password).
  Status apply(const AuthRequest& r);

  const User* user(std::string_view name) const;
  const Role* role(std::string_view name) const;
  std::vector<std::string> user_names() const;  // sorted
  std::vector<std::string> role_names() const;  // sorted
  bool is_root(std::string_view name) const;

  // etcd's isOpPermitted: ok when auth is disabled; else kErrUserEmpty for
  // no caller (revision 0), kErrAuthOldRevision when the caller was resolved
  // before the last change, kErrPermissionDenied for an unknown user or
  // missing grant; root may do anything. want is kRead or kWrite.
  Status check(const Caller& c, PermType want, std::string_view key,
               std::string_view range_end) const;
  // etcd's IsAdminPermitted: ok when disabled; kErrUserEmpty,
  // kErrUserNotFound, or kErrPermissionDenied unless the caller is root.
  Status check_admin(const Caller& c) const;

  // Snapshot section (fsm/kv_state_machine.h, payload format 3):
  //   u8 2, u8 enabled, u64 revision, u32 users, each {name, hash, u8
  //   no_password, u32 roles, each name}, u32 roles, each {name, u32 perms,
  //   each {i32 type, key, range_end}}, forward key (format 2; format 1,
  //   without it, still decodes); strings u32 length + bytes.
  std::string encode() const;
  // nullopt unless the bytes are exactly such an encoding within the limits above.
  static std::optional<AuthStore> decode(std::string_view data);

  bool operator==(const AuthStore&) const = default;

 private:
  Status user_add(const AuthRequest& r);
  Status grant_permission(const AuthRequest& r);
  Status revoke_permission(const AuthRequest& r);
  Status user_revoke_role(const AuthRequest& r);
  Status role_delete(const AuthRequest& r);

  bool enabled_ = false;
  uint64_t revision_ = 1;  // etcd starts its auth revision at 1
  std::map<std::string, User, std::less<>> users_;
  std::map<std::string, Role, std::less<>> roles_;
  std::string forward_key_;
};

}  // namespace ckv::auth
