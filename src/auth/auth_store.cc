// The replicated auth state (see auth_store.h).
#include "auth/auth_store.h"

#include <algorithm>

#include "auth/password.h"
#include "auth/permissions.h"
#include "common/bytes.h"

namespace ckv::auth {

namespace {

// 1: no forwarding key; 2: the forwarding key last (auth_store.h).
constexpr uint8_t kEncodingFormatV1 = 1;
constexpr uint8_t kEncodingFormat = 2;

Status refused(const char* etcd_text) {
  // The code only picks the HTTP status; kv_convert.cc's table maps each
  // text to its code again, so this is a hint for callers that log.
  return Status(StatusCode::kConflict, etcd_text);
}

bool valid_type(int32_t t) { return t >= 0 && t <= static_cast<int32_t>(PermType::kReadWrite); }

bool perm_less(const Permission& a, const Permission& b) {
  return a.key != b.key ? a.key < b.key : a.range_end < b.range_end;
}

const char* type_name(PermType t) {
  switch (t) {
    case PermType::kRead: return "READ";
    case PermType::kWrite: return "WRITE";
    case PermType::kReadWrite: return "READWRITE";
  }
  return "?";
}

// Keys may hold any bytes: the log gets them escaped.
std::string printable(std::string_view key) {
  std::string out;
  for (unsigned char c : key) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

}  // namespace

std::string describe(const AuthRequest& r) {
  const std::string user = "user \"" + printable(r.name) + "\"";
  const std::string role = "role \"" + printable(r.role) + "\"";
  const std::string range =
      "[\"" + printable(r.perm.key) + "\", \"" + printable(r.perm.range_end) + "\")";
  switch (r.op) {
    case AuthOp::kEnable: return "enable authentication";
    case AuthOp::kDisable: return "disable authentication";
    case AuthOp::kAuthenticate: return "authenticate " + user;
    case AuthOp::kUserAdd: return "add " + user + (r.no_password ? " (no password)" : "");
    case AuthOp::kUserDelete: return "delete " + user;
    case AuthOp::kUserChangePassword: return "change the password of " + user;
    case AuthOp::kUserGrantRole: return "grant " + role + " to " + user;
    case AuthOp::kUserRevokeRole: return "revoke " + role + " from " + user;
    case AuthOp::kRoleAdd: return "add " + role;
    case AuthOp::kRoleDelete: return "delete " + role;
    case AuthOp::kRoleGrantPermission:
      return std::string("grant ") + type_name(r.perm.type) + " on " + range + " to " + role;
    case AuthOp::kRoleRevokePermission: return "revoke the permission on " + range + " from " + role;
  }
  return "unknown auth change";
}

const User* AuthStore::user(std::string_view name) const {
  auto it = users_.find(name);
  return it == users_.end() ? nullptr : &it->second;
}

const Role* AuthStore::role(std::string_view name) const {
  auto it = roles_.find(name);
  return it == roles_.end() ? nullptr : &it->second;
}

std::vector<std::string> AuthStore::user_names() const {
  std::vector<std::string> out;
  for (const auto& [name, u] : users_) out.push_back(name);
  return out;
}

std::vector<std::string> AuthStore::role_names() const {
  std::vector<std::string> out;
  for (const auto& [name, r] : roles_) out.push_back(name);
  return out;
}

bool AuthStore::is_root(std::string_view name) const {
  const User* u = user(name);
  return u != nullptr && std::binary_search(u->roles.begin(), u->roles.end(), kRootRole);
}

Status AuthStore::check(const Caller& c, PermType want, std::string_view key,
                        std::string_view range_end) const {
  if (!enabled_) return Status::ok();
  if (c.revision == 0) return Status(StatusCode::kUnauthenticated, kErrUserEmpty);
  if (c.revision < revision_) return refused(kErrAuthOldRevision);
  const User* u = user(c.user);
  if (u == nullptr) return Status(StatusCode::kPermissionDenied, kErrPermissionDenied);
  if (is_root(c.user)) return Status::ok();
  std::vector<const Permission*> perms;
  for (const std::string& rn : u->roles) {
    if (const Role* r = role(rn)) {
      for (const Permission& p : r->perms) perms.push_back(&p);
    }
  }
  if (covers(perms, want, key, range_end)) return Status::ok();
  return Status(StatusCode::kPermissionDenied, kErrPermissionDenied);
}

Status AuthStore::check_admin(const Caller& c) const {
  if (!enabled_) return Status::ok();
  if (c.user.empty()) return Status(StatusCode::kUnauthenticated, kErrUserEmpty);
  if (user(c.user) == nullptr) return refused(kErrUserNotFound);
  if (!is_root(c.user)) return Status(StatusCode::kPermissionDenied, kErrPermissionDenied);
  return Status::ok();
}

Status AuthStore::apply(const AuthRequest& r) {
  switch (r.op) {
    case AuthOp::kEnable: {
      if (enabled_) return Status::ok();  // etcd: "already enabled; ignored"
      const User* root = user(kRootUser);
      if (root == nullptr) return refused(kErrRootUserNotExist);
      if (!is_root(kRootUser)) return refused(kErrRootRoleNotExist);
      enabled_ = true;  // etcd keeps the revision here
      // A fresh forwarding key per enable (drawn by the proposer); an
      // Enable from an older build carries none.
      forward_key_ = r.secret.size() == kForwardKeyBytes ? r.secret : std::string();
      return Status::ok();
    }
    case AuthOp::kDisable:
      if (!enabled_) return Status::ok();
      enabled_ = false;
      forward_key_.clear();
      ++revision_;
      return Status::ok();
    case AuthOp::kAuthenticate: {
      if (!enabled_) return refused(kErrAuthNotEnabled);
      const User* u = user(r.name);
      if (u == nullptr || u->no_password || r.secret.size() != 2 * kDigestBytes ||
          r.secret.substr(kDigestBytes) != sha256(u->password_hash)) {
        return Status(StatusCode::kUnauthenticated, kErrAuthFailed);
      }
      return Status::ok();
    }
    case AuthOp::kUserAdd:
      return user_add(r);
    case AuthOp::kUserDelete: {
      if (enabled_ && r.name == kRootUser) return Status(StatusCode::kInvalid, kErrInvalidAuthMgmt);
      auto it = users_.find(r.name);
      if (it == users_.end()) return refused(kErrUserNotFound);
      users_.erase(it);
      ++revision_;
      return Status::ok();
    }
    case AuthOp::kUserChangePassword: {
      auto it = users_.find(r.name);
      if (it == users_.end()) return refused(kErrUserNotFound);
      it->second.password_hash = r.secret;
      ++revision_;
      return Status::ok();
    }
    case AuthOp::kUserGrantRole: {
      auto it = users_.find(r.name);
      if (it == users_.end()) return refused(kErrUserNotFound);
      if (r.role != kRootRole && role(r.role) == nullptr) return refused(kErrRoleNotFound);
      std::vector<std::string>& roles = it->second.roles;
      auto pos = std::lower_bound(roles.begin(), roles.end(), r.role);
      if (pos != roles.end() && *pos == r.role) return Status::ok();  // etcd: ignored, no new revision
      roles.insert(pos, r.role);
      ++revision_;
      return Status::ok();
    }
    case AuthOp::kUserRevokeRole:
      return user_revoke_role(r);
    case AuthOp::kRoleAdd: {
      if (r.role.empty()) return Status(StatusCode::kInvalid, kErrRoleEmpty);
      if (role(r.role) != nullptr) return refused(kErrRoleAlreadyExist);
      roles_.emplace(r.role, Role{r.role, {}});
      ++revision_;
      return Status::ok();
    }
    case AuthOp::kRoleDelete:
      return role_delete(r);
    case AuthOp::kRoleGrantPermission:
      return grant_permission(r);
    case AuthOp::kRoleRevokePermission:
      return revoke_permission(r);
  }
  return Status(StatusCode::kInvalid, "unknown auth request");
}

Status AuthStore::user_add(const AuthRequest& r) {
  if (r.name.empty()) return Status(StatusCode::kInvalid, kErrUserEmpty);
  if (user(r.name) != nullptr) return refused(kErrUserAlreadyExist);
  User u;
  u.name = r.name;
  u.no_password = r.no_password;
  if (!r.no_password) u.password_hash = r.secret;
  users_.emplace(r.name, std::move(u));
  ++revision_;
  return Status::ok();
}

Status AuthStore::user_revoke_role(const AuthRequest& r) {
  if (enabled_ && r.name == kRootUser && r.role == kRootRole) {
    return Status(StatusCode::kInvalid, kErrInvalidAuthMgmt);
  }
  auto it = users_.find(r.name);
  if (it == users_.end()) return refused(kErrUserNotFound);
  std::vector<std::string>& roles = it->second.roles;
  auto pos = std::lower_bound(roles.begin(), roles.end(), r.role);
  if (pos == roles.end() || *pos != r.role) return refused(kErrRoleNotGranted);
  roles.erase(pos);
  ++revision_;
  return Status::ok();
}

Status AuthStore::role_delete(const AuthRequest& r) {
  if (enabled_ && r.role == kRootRole) return Status(StatusCode::kInvalid, kErrInvalidAuthMgmt);
  auto it = roles_.find(r.role);
  if (it == roles_.end()) return refused(kErrRoleNotFound);
  roles_.erase(it);
  // Users lose the role too (etcd's RoleDelete).
  for (auto& [name, u] : users_) {
    auto pos = std::lower_bound(u.roles.begin(), u.roles.end(), r.role);
    if (pos != u.roles.end() && *pos == r.role) u.roles.erase(pos);
  }
  ++revision_;
  return Status::ok();
}

Status AuthStore::grant_permission(const AuthRequest& r) {
  auto it = roles_.find(r.role);
  if (it == roles_.end()) return refused(kErrRoleNotFound);
  std::vector<Permission>& perms = it->second.perms;
  auto pos = std::lower_bound(perms.begin(), perms.end(), r.perm, perm_less);
  if (pos != perms.end() && pos->key == r.perm.key && pos->range_end == r.perm.range_end) {
    pos->type = r.perm.type;  // etcd updates the existing grant
  } else {
    perms.insert(pos, r.perm);
  }
  ++revision_;
  return Status::ok();
}

Status AuthStore::revoke_permission(const AuthRequest& r) {
  auto it = roles_.find(r.role);
  if (it == roles_.end()) return refused(kErrRoleNotFound);
  std::vector<Permission>& perms = it->second.perms;
  auto pos = std::find_if(perms.begin(), perms.end(), [&](const Permission& p) {
    return p.key == r.perm.key && p.range_end == r.perm.range_end;
  });
  if (pos == perms.end()) return refused(kErrPermissionNotGranted);
  perms.erase(pos);
  ++revision_;
  return Status::ok();
}

std::string AuthStore::encode() const {
  std::string out;
  put_u8(out, kEncodingFormat);
  put_u8(out, enabled_ ? 1 : 0);
  put_u64le(out, revision_);
  put_u32le(out, static_cast<uint32_t>(users_.size()));
  for (const auto& [name, u] : users_) {
    put_string32(out, u.name);
    put_string32(out, u.password_hash);
    put_u8(out, u.no_password ? 1 : 0);
    put_u32le(out, static_cast<uint32_t>(u.roles.size()));
    for (const std::string& rn : u.roles) put_string32(out, rn);
  }
  put_u32le(out, static_cast<uint32_t>(roles_.size()));
  for (const auto& [name, r] : roles_) {
    put_string32(out, r.name);
    put_u32le(out, static_cast<uint32_t>(r.perms.size()));
    for (const Permission& p : r.perms) {
      put_u32le(out, static_cast<uint32_t>(p.type));
      put_string32(out, p.key);
      put_string32(out, p.range_end);
    }
  }
  put_string32(out, forward_key_);
  return out;
}

std::optional<AuthStore> AuthStore::decode(std::string_view data) {
  ByteReader r(data);
  AuthStore s;
  uint8_t format = 0, enabled = 0;
  uint32_t n_users = 0, n_roles = 0;
  if (!r.u8(format) || (format != kEncodingFormat && format != kEncodingFormatV1) || !r.u8(enabled) || enabled > 1 ||
      !r.u64le(s.revision_) || s.revision_ == 0 || !r.u32le(n_users)) {
    return std::nullopt;
  }
  s.enabled_ = enabled == 1;
  // Counts are never trusted: every element consumes bytes first.
  for (uint32_t i = 0; i < n_users; ++i) {
    User u;
    uint8_t no_password = 0;
    uint32_t n = 0;
    if (!r.string32(u.name, kMaxNameBytes) || u.name.empty() ||
        !r.string32(u.password_hash, kMaxSecretBytes) || !r.u8(no_password) || no_password > 1 ||
        !r.u32le(n)) {
      return std::nullopt;
    }
    u.no_password = no_password == 1;
    for (uint32_t j = 0; j < n; ++j) {
      std::string rn;
      if (!r.string32(rn, kMaxNameBytes)) return std::nullopt;
      if (!u.roles.empty() && rn <= u.roles.back()) return std::nullopt;  // sorted, unique
      u.roles.push_back(std::move(rn));
    }
    if (!s.users_.empty() && u.name <= s.users_.rbegin()->first) return std::nullopt;
    std::string key = u.name;
    s.users_.emplace_hint(s.users_.end(), std::move(key), std::move(u));
  }
  if (!r.u32le(n_roles)) return std::nullopt;
  for (uint32_t i = 0; i < n_roles; ++i) {
    Role role;
    uint32_t n = 0;
    if (!r.string32(role.name, kMaxNameBytes) || role.name.empty() || !r.u32le(n)) return std::nullopt;
    for (uint32_t j = 0; j < n; ++j) {
      Permission p;
      uint32_t type = 0;
      if (!r.u32le(type) || !valid_type(static_cast<int32_t>(type)) ||
          !r.string32(p.key, kMaxPermKeyBytes) || !r.string32(p.range_end, kMaxPermKeyBytes)) {
        return std::nullopt;
      }
      p.type = static_cast<PermType>(type);
      if (!role.perms.empty() && !perm_less(role.perms.back(), p)) return std::nullopt;
      role.perms.push_back(std::move(p));
    }
    if (!s.roles_.empty() && role.name <= s.roles_.rbegin()->first) return std::nullopt;
    std::string key = role.name;
    s.roles_.emplace_hint(s.roles_.end(), std::move(key), std::move(role));
  }
  if (format == kEncodingFormat) {
    if (!r.string32(s.forward_key_, kForwardKeyBytes) ||
        (!s.forward_key_.empty() && s.forward_key_.size() != kForwardKeyBytes)) {
      return std::nullopt;
    }
  }
  if (!r.at_end()) return std::nullopt;
  return s;
}

}  // namespace ckv::auth
