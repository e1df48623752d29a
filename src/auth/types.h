// Users, roles, permissions and the replicated auth requests: plain values shared by the auth store, the command codec and the front ends.
//
// etcd 3.4's model (auth/authpb): a user has a password hash (or none:
// no_password) and a sorted set of role names; a role has permissions, each
// READ, WRITE or READWRITE on one key (range_end empty), on [key,
// range_end), or on every key from key on (range_end "\0", etcd's
// --from-key). The user "root" with the role "root" may do anything; auth
// cannot be enabled without it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ckv::auth {

// authpb.Permission.Type's values, as they travel on etcd's wire.
enum class PermType : int32_t { kRead = 0, kWrite = 1, kReadWrite = 2 };

struct Permission {
  PermType type = PermType::kRead;
  std::string key;
  std::string range_end;  // empty: key alone; "\0": every key >= key
  bool operator==(const Permission&) const = default;
};

struct User {
  std::string name;
  // argon2id in libsodium's string form (auth/password.h); empty with no_password.
  std::string password_hash;
  std::vector<std::string> roles;  // sorted, no duplicates
  bool no_password = false;        // may not Authenticate (etcd's UserAddOptions.no_password)
  bool operator==(const User&) const = default;
};

struct Role {
  std::string name;
  std::vector<Permission> perms;  // sorted by key (then range_end), one per (key, range_end)
  bool operator==(const Role&) const = default;
};

inline constexpr const char* kRootUser = "root";
inline constexpr const char* kRootRole = "root";

// Who asks: the user a token, a password or a certificate named, and the
// auth revision at which that was resolved (0: no user at all). At apply a
// request resolved at an older revision than the store's is refused
// (kErrAuthOldRevision), so a permission revoked between the check and
// the apply never lets a write through (etcd's isOpPermitted).
struct Caller {
  std::string user;
  uint64_t revision = 0;
  bool operator==(const Caller&) const = default;
};

// One replicated change of the auth state (a log command, fsm/command.h).
// Secrets never travel: passwords are hashed on the proposing node
// (password.h) and Authenticate carries a digest of the new token.
enum class AuthOp : uint8_t {
  kEnable = 1,  // secret = the forwarding key, kForwardKeyBytes random bytes (auth_store.h)
  kDisable = 2,
  // name; secret = SHA-256 of the new token (simple_tokens.h), then SHA-256
  // of the password hash the proposer checked: applied after a password
  // change, it is refused, so no token outlives the password it was issued for.
  kAuthenticate = 3,
  kUserAdd = 4,       // name; secret = password hash; no_password
  kUserDelete = 5,    // name
  kUserChangePassword = 6,  // name; secret = password hash
  kUserGrantRole = 7,       // name, role
  kUserRevokeRole = 8,      // name, role
  kRoleAdd = 9,             // role
  kRoleDelete = 10,         // role
  kRoleGrantPermission = 11,   // role, perm
  kRoleRevokePermission = 12,  // role, perm.key, perm.range_end
};
inline constexpr uint8_t kMaxAuthOp = 12;

struct AuthRequest {
  AuthOp op = AuthOp::kEnable;
  std::string name;    // user
  std::string role;
  std::string secret;  // see AuthOp
  bool no_password = false;
  Permission perm;
  bool operator==(const AuthRequest&) const = default;
};

// What an applied auth change answers: only its header (etcd's auth
// responses carry nothing else; Authenticate's token is known to its proposer).
struct AuthResponse {
  struct {
    int64_t revision = 0;  // the MVCC store's, as every header
  } header;
};

// etcd 3.4's texts (etcdserver/api/v3rpc/rpctypes/error.go); kv_convert.cc
// gives each its gRPC code.
inline constexpr const char* kErrRootUserNotExist = "etcdserver: root user does not exist";
inline constexpr const char* kErrRootRoleNotExist = "etcdserver: root user does not have root role";
inline constexpr const char* kErrUserAlreadyExist = "etcdserver: user name already exists";
inline constexpr const char* kErrUserEmpty = "etcdserver: user name is empty";
inline constexpr const char* kErrUserNotFound = "etcdserver: user name not found";
inline constexpr const char* kErrRoleAlreadyExist = "etcdserver: role name already exists";
inline constexpr const char* kErrRoleNotFound = "etcdserver: role name not found";
inline constexpr const char* kErrRoleEmpty = "etcdserver: role name is empty";
inline constexpr const char* kErrAuthFailed =
    "etcdserver: authentication failed, invalid user ID or password";
inline constexpr const char* kErrPermissionDenied = "etcdserver: permission denied";
inline constexpr const char* kErrRoleNotGranted = "etcdserver: role is not granted to the user";
inline constexpr const char* kErrPermissionNotGranted =
    "etcdserver: permission is not granted to the role";
inline constexpr const char* kErrAuthNotEnabled = "etcdserver: authentication is not enabled";
inline constexpr const char* kErrInvalidAuthToken = "etcdserver: invalid auth token";
inline constexpr const char* kErrInvalidAuthMgmt = "etcdserver: invalid auth management";
inline constexpr const char* kErrAuthOldRevision = "etcdserver: revision of auth store is old";

}  // namespace ckv::auth
