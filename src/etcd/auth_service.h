// etcd's Auth request layer: who a caller is (token, password, certificate), Authenticate, and the user and role calls; shared by gRPC, the gateway and the seed API.
//
// Identity (docs/security.md, "Client authentication"):
//   resolve()   a call's credentials -> auth::Caller: a token (gRPC
//               metadata "token" or "authorization", etcd's names; the
//               gateway's Authorization header, raw or "Bearer <token>")
//               names its user: a simple token on this member
//               (auth/simple_tokens.h), at the store's current revision; a
//               JWT by its signature, at the revision it was issued at (so
//               any later auth change makes it kErrAuthOldRevision); an
//               unknown, expired or forged one is kErrInvalidAuthToken so clients
//               authenticate again; without a token, a verified TLS client
//               certificate's common name is the user (etcd's rule); a
//               forwarded call's caller is the forwarding member's claim
//               (forward_claim(); auth/forwarded_caller.h); with
//               neither, no user (revision 0), which the checks refuse with
//               kErrUserEmpty once auth is enabled. The caller carries the
//               auth revision it was resolved at (auth/types.h, Caller).
//   basic()     HTTP Basic (seed API): the password checked against the
//               user's argon2id hash, verified credentials cached for
//               kVerifiedCredentialTtlMs (keyed by a salted SHA-256 of
//               user and password, dropped when the user's hash changes),
//               at most kMaxConcurrentPasswordChecks hashes at once and
//               kMaxQueuedPasswordChecks waiting (then "too many requests"),
//               so Basic auth cannot be used to burn the CPU.
// Calls (etcd 3.4's semantics; errors are auth/types.h's texts):
//   authenticate  read barrier, password checked here, a fresh token whose
//                 digest is proposed (Authenticate command; the apply checks
//                 the user and that its password is still the one checked),
//                 then the token is answered: every member knows it once
//                 it applied the entry. With JWT: no proposal; the token is
//                 signed here with the auth revision read together with the
//                 password hash checked (a member without priv-key answers
//                 auth::kErrVerifyOnly, as etcd).
//   change        the user, role and enable/disable calls: passwords hashed
//                 here, then proposed with the caller; root needed once
//                 auth is enabled (checked here and at apply).
//   user_get/list, role_get/list   read barrier, then this node's state:
//                 root, or (gets) the user itself / a holder of the role.
// Refusals are logged, at most kMaxRefusalLogsPerSec lines a second.
//
// Threads: any; `done` is called exactly once, inline, on a password
// worker, or on the Raft thread (so it must only hand the answer off).
// stop() after Node::stop() answers what is still waiting "server stopped".
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "auth/jwt_tokens.h"
#include "auth/types.h"
#include "common/status.h"
#include "etcd/cluster_view.h"
#include "node/node.h"

namespace ckv::etcd {

inline constexpr int kMaxConcurrentPasswordChecks = 2;  // threads hashing at once
inline constexpr size_t kMaxQueuedPasswordChecks = 256;  // waiting beyond those
inline constexpr int64_t kVerifiedCredentialTtlMs = 60'000;
inline constexpr size_t kMaxCachedCredentials = 4096;
inline constexpr int kMaxRefusalLogsPerSec = 10;
// Calls refused on this member's auth state that wait for a read barrier and
// their second check (check_current); beyond this, "too many requests".
inline constexpr size_t kMaxQueuedAuthRechecks = 256;

struct AuthServiceOptions {
  int request_timeout_ms = 5000;  // proposals and read barriers (-commit-timeout-ms)
  // -auth-token=jwt,...: Authenticate signs a JWT here and resolve()
  // verifies one (auth/jwt_tokens.h), no log entry either way; null: simple
  // tokens (auth/simple_tokens.h, replicated through the log).
  std::shared_ptr<const auth::JwtTokens> jwt;
};

// What a front end knows of a call's credentials.
struct Credentials {
  std::string token;    // empty: none
  std::string cert_cn;  // a verified client certificate's common name; empty: none
  // A member's claim for the caller it forwards (auth/forwarded_caller.h);
  // empty: none. Checked against the forwarding key, so only members' count.
  std::string forwarded_caller;
};

struct AuthenticateAnswer {
  Header header;
  std::string token;
};
struct UserGetAnswer {
  Header header;
  std::vector<std::string> roles;
};
struct RoleGetAnswer {
  Header header;
  std::vector<auth::Permission> perms;
};
struct NamesAnswer {  // UserList, RoleList
  Header header;
  std::vector<std::string> names;
};

// The gRPC code etcd answers s with (kv_convert.h's table), for callers
// that build their own error (the Cluster service).
int grpc_code_of(const Status& s);
// The cancel_reason etcd 3.4 gives a watch create that auth refused (it is
// answered created and canceled, watch_id -1, never an error): the gRPC
// error text of an invalid token, an old auth revision or no user, and of
// "permission denied" for anything else (serverWatchStream.recvLoop).
std::string watch_cancel_reason(const Status& refusal);

template <typename T>
using AuthDone = std::function<void(Result<T>)>;

class AuthService {
 public:
  explicit AuthService(node::Node& node, AuthServiceOptions options = {});
  ~AuthService();
  AuthService(const AuthService&) = delete;
  AuthService& operator=(const AuthService&) = delete;

  Result<auth::Caller> resolve(const Credentials& c);
  // What a member forwarding c's call to the leader sends so that the
  // leader resolves the same user: empty unless the caller is known here by
  // its certificate alone (tokens and passwords travel as they came).
  std::string forward_claim(const Credentials& c);
  // resolve() and root (auth_store.h, check_admin): what member changes,
  // compaction's peers and the Maintenance calls etcd guards need. what
  // names the call in the log if refused.
  Status require_admin(const Credentials& c, const char* what);
  // resolve() and READ on [key, range_end) (a Watch's range).
  Status require_read(const Credentials& c, const std::string& key, const std::string& range_end,
                      const char* what);
  void basic(std::string user, std::string password, AuthDone<auth::Caller> done);

  void authenticate(std::string name, std::string password, AuthDone<AuthenticateAnswer> done);
  // r.secret holds the plain password for kUserAdd and
  // kUserChangePassword (hashed here, never proposed); other ops as auth/types.h.
  // The caller is resolved from creds here (check_current: again after a
  // read barrier if this member's state refused it).
  void change(Credentials creds, auth::AuthRequest r, AuthDone<Header> done);
  void user_get(auth::Caller caller, std::string name, AuthDone<UserGetAnswer> done);
  void role_get(auth::Caller caller, std::string role, AuthDone<RoleGetAnswer> done);
  void user_list(auth::Caller caller, AuthDone<NamesAnswer> done);
  void role_list(auth::Caller caller, AuthDone<NamesAnswer> done);

  // Who asks, from a call's credentials on this member's auth state now
  // (resolve() or basic(); may answer later, on any thread).
  using Identify = std::function<void(AuthDone<auth::Caller>)>;
  // Whether `who` may make the call on this member's auth state now (e.g.
  // KvStateMachine::authorize of its command). Cheap: it may run on the
  // Raft thread's hand-off.
  using Permit = std::function<Status(const auth::Caller& who)>;
  // The one front-end permission check (docs/security.md, "Where the check
  // runs"): identify, then permit. This member's auth state may lag the
  // cluster's (an auth change committed but not applied here yet: a grant,
  // 'auth disable', a new user, a token just issued), so a refusal that lag
  // can explain stands only once a read barrier shows the current state:
  // then identify and permit run once more, so the caller is resolved anew
  // at the current auth revision. done(the caller to propose with), or
  // done(the refusal; permit's is logged as `what`, identify logs its own);
  // a barrier that fails answers kUnavailable (nothing done; retry). At most
  // kMaxQueuedAuthRechecks wait. done runs inline, on a password worker or
  // on this service's recheck thread (never the Raft thread).
  void check_current(const std::string& what, const Identify& identify, const Permit& permit,
                     AuthDone<auth::Caller> done);

  // Logs a refused request (rate-limited): what was asked, by whom, why.
  void note_refusal(const std::string& what, const auth::Caller& caller, const Status& why);
  // The same for an apply's outcome, if auth refused it there (no user, an
  // old auth revision, no permission): the member that took the request logs
  // it, as it logs the refusals of its own checks.
  void note_if_refused(const std::string& what, const auth::Caller& caller, const Status& outcome);

  void stop();

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace ckv::etcd
