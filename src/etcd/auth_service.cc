// The Auth request layer (see auth_service.h): credentials to callers, password checks on a bounded pool, auth changes as proposals.
#include "etcd/auth_service.h"

#include <atomic>
#include <chrono>
#include <mutex>
#include <unordered_map>
#include <utility>

#include <spdlog/spdlog.h>

#include "auth/auth_store.h"
#include "auth/forwarded_caller.h"
#include "auth/password.h"
#include "auth/simple_tokens.h"
#include "etcd/work_pool.h"
#include "etcd/kv_convert.h"
#include "fsm/kv_state_machine.h"

namespace ckv::etcd {

namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr size_t kQueued = kMaxQueuedPasswordChecks;

Status too_many() { return Status(StatusCode::kUnavailable, kErrTooManyRequests); }

Status check_name(const std::string& name) {
  if (name.size() > auth::kMaxNameBytes) {
    return Status(StatusCode::kInvalid, "consensuskv: a user or role name is at most " +
                                            std::to_string(auth::kMaxNameBytes) + " bytes");
  }
  return Status::ok();
}

Status check_request(const auth::AuthRequest& r) {
  if (Status s = check_name(r.name); !s.is_ok()) return s;
  if (Status s = check_name(r.role); !s.is_ok()) return s;
  if (r.perm.key.size() > auth::kMaxPermKeyBytes || r.perm.range_end.size() > auth::kMaxPermKeyBytes) {
    return Status(StatusCode::kInvalid, "consensuskv: a permission's key or range end is at most " +
                                            std::to_string(auth::kMaxPermKeyBytes) + " bytes");
  }
  if (r.secret.size() > auth::kMaxPasswordBytes) {
    return Status(StatusCode::kInvalid, "consensuskv: a password is at most " +
                                            std::to_string(auth::kMaxPasswordBytes) + " bytes");
  }
  return Status::ok();
}

// Whether this member's auth state lagging the cluster's could explain s: no
// or an unknown token, user or password, no permission, an old revision.
bool may_lag(const Status& s) {
  return s.code() == StatusCode::kUnauthenticated || s.code() == StatusCode::kPermissionDenied ||
         s.message() == auth::kErrUserNotFound || s.message() == auth::kErrAuthOldRevision;
}

}  // namespace

int grpc_code_of(const Status& s) { return static_cast<int>(to_grpc_status(s).error_code()); }

std::string watch_cancel_reason(const Status& refusal) {
  const std::string& m = refusal.message();
  if (m == auth::kErrInvalidAuthToken) return "rpc error: code = Unauthenticated desc = " + m;
  if (m == auth::kErrAuthOldRevision || m == auth::kErrUserEmpty) {
    return "rpc error: code = InvalidArgument desc = " + m;
  }
  return std::string("rpc error: code = PermissionDenied desc = ") + auth::kErrPermissionDenied;
}

class AuthService::Impl {
 public:
  Impl(node::Node& node, AuthServiceOptions options)
      : node_(node), options_(options), salt_(auth::random_bytes(auth::kDigestBytes)) {}

  ~Impl() { stop(); }

  void stop() {
    std::unordered_map<uint64_t, std::function<void()>> unanswered;
    {
      std::lock_guard lock(mu_);
      if (stopped_) return;
      stopped_ = true;
      unanswered.swap(pending_);
    }
    for (auto& [id, answer] : unanswered) answer();
    recheck_pool_.stop();
    pool_.stop();
  }

  const fsm::KvStateMachine& sm() const { return node_.state_machine(); }

  Result<auth::Caller> resolve(const Credentials& c) {
    if (!c.token.empty() && options_.jwt) {
      Result<auth::JwtClaims> claims = options_.jwt->verify(c.token, unix_now_sec());
      if (!claims.is_ok()) {
        // The reason is for the log; the client hears etcd's one text.
        note_refusal("a call with a JWT", auth::Caller{}, claims.status());
        return Status(StatusCode::kUnauthenticated, auth::kErrInvalidAuthToken);
      }
      return auth::Caller{std::move(claims.value().username), claims.value().revision};
    }
    if (!c.token.empty()) {
      std::optional<std::string> user = node_.tokens().user_of(c.token, SteadyClock::now());
      if (!user) {
        note_refusal("a call with a token", auth::Caller{}, Status(StatusCode::kUnauthenticated, auth::kErrInvalidAuthToken));
        return Status(StatusCode::kUnauthenticated, auth::kErrInvalidAuthToken);
      }
      return auth::Caller{std::move(*user), sm().auth_revision()};
    }
    if (!c.forwarded_caller.empty()) {
      std::optional<auth::Caller> who;
      sm().with_auth([&](const auth::AuthStore& a) {
        who = auth::verify_forwarded_caller(a.forward_key(), c.forwarded_caller);
      });
      if (!who) {
        note_refusal("a forwarded call", auth::Caller{},
                     Status(StatusCode::kUnauthenticated, "its caller claim was not made by a member"));
        return Status(StatusCode::kUnauthenticated, auth::kErrInvalidAuthToken);
      }
      return std::move(*who);
    }
    // etcd's AuthInfoFromTLS: the certificate's common name is the user.
    if (!c.cert_cn.empty() && sm().auth_enabled()) return auth::Caller{c.cert_cn, sm().auth_revision()};
    return auth::Caller{};
  }

  std::string forward_claim(const Credentials& c) {
    if (!c.token.empty()) return {};
    if (!c.forwarded_caller.empty()) return c.forwarded_caller;
    if (c.cert_cn.empty()) return {};
    std::string claim;
    sm().with_auth([&](const auth::AuthStore& a) {
      if (a.enabled()) claim = auth::forwarded_caller_claim(a.forward_key(), auth::Caller{c.cert_cn, a.revision()});
    });
    return claim;
  }

  // ---- passwords ------------------------------------------------------------

  struct Verified {
    std::string user;
    std::string hash_digest;  // SHA-256 of the stored hash it was checked against
    SteadyClock::time_point expires;
  };

  // The user's stored hash, or why there is none to check against.
  Result<std::string> stored_hash(const std::string& name) const {
    Result<std::string> out = Status(StatusCode::kUnauthenticated, auth::kErrAuthFailed);
    sm().with_auth([&](const auth::AuthStore& a) {
      if (!a.enabled()) {
        out = Status(StatusCode::kConflict, auth::kErrAuthNotEnabled);
        return;
      }
      const auth::User* u = a.user(name);
      if (u != nullptr && !u->no_password) out = u->password_hash;
    });
    return out;
  }

  void basic(std::string user, std::string password, AuthDone<auth::Caller> done) {
    if (!sm().auth_enabled()) return done(auth::Caller{});  // credentials are not needed
    Result<std::string> hash = stored_hash(user);
    if (!hash.is_ok()) {
      note_refusal("HTTP Basic credentials", auth::Caller{user, 0}, hash.status());
      return done(Status(StatusCode::kUnauthenticated, auth::kErrAuthFailed));
    }
    const std::string key = auth::sha256(salt_ + user + std::string(1, '\0') + password);
    const std::string hash_digest = auth::sha256(hash.value());
    const uint64_t revision = sm().auth_revision();
    bool cached = false;
    {
      std::lock_guard lock(mu_);
      auto it = verified_.find(key);
      cached = it != verified_.end() && it->second.expires > SteadyClock::now() &&
               it->second.hash_digest == hash_digest && it->second.user == user;
    }
    // Answered outside mu_: done may go on to check_current, which takes it.
    if (cached) return done(auth::Caller{user, revision});
    const bool queued = pool_.try_post(kQueued, [this, user = std::move(user), password = std::move(password),
                                        hash = std::move(hash).value(), key, hash_digest, revision,
                                        done]() mutable {
      if (!auth::verify_password(hash, password)) {
        note_refusal("HTTP Basic credentials", auth::Caller{user, 0},
                     Status(StatusCode::kUnauthenticated, "invalid password"));
        return done(Status(StatusCode::kUnauthenticated, auth::kErrAuthFailed));
      }
      {
        std::lock_guard lock(mu_);
        if (verified_.size() >= kMaxCachedCredentials) verified_.clear();  // rare; costs one more hash each
        verified_[key] = Verified{user, hash_digest,
                                  SteadyClock::now() + std::chrono::milliseconds(kVerifiedCredentialTtlMs)};
      }
      done(auth::Caller{std::move(user), revision});
    });
    if (!queued) done(too_many());
  }

  // ---- Authenticate ---------------------------------------------------------

  void authenticate(std::string name, std::string password, AuthDone<AuthenticateAnswer> done) {
    if (Status s = check_name(name); !s.is_ok()) return done(s);
    if (password.size() > auth::kMaxPasswordBytes) {
      return done(Status(StatusCode::kUnauthenticated, auth::kErrAuthFailed));
    }
    done = track(std::move(done));
    if (!done) return;
    // etcd reads the password after a linearizable barrier, so a user
    // added just before is found.
    node_.read_barrier(options_.request_timeout_ms, [this, name = std::move(name),
                                                     password = std::move(password),
                                                     done](Status s) mutable {
      if (!s.is_ok()) return done(s);
      const bool queued = pool_.try_post(kQueued, [this, name = std::move(name), password = std::move(password),
                                          done]() mutable {
        if (options_.jwt) return check_and_sign(name, password, done);
        check_and_issue(name, password, done);
      });
      if (!queued) done(too_many());
    });
  }

  void check_and_issue(const std::string& name, const std::string& password,
                       const AuthDone<AuthenticateAnswer>& done) {
    Result<std::string> hash = stored_hash(name);
    if (hash.is_ok() && !auth::verify_password(hash.value(), password)) {
      hash = Status(StatusCode::kUnauthenticated, "invalid password");
    }
    if (!hash.is_ok()) {
      note_refusal("Authenticate", auth::Caller{name, 0}, hash.status());
      if (hash.status().message() == auth::kErrAuthNotEnabled) return done(hash.status());
      return done(Status(StatusCode::kUnauthenticated, auth::kErrAuthFailed));
    }
    std::string token = auth::SimpleTokens::generate();
    auth::AuthRequest r;
    r.op = auth::AuthOp::kAuthenticate;
    r.name = name;
    r.secret = auth::SimpleTokens::digest(token) + auth::sha256(hash.value());
    propose(auth::Caller{}, std::move(r), [name, token = std::move(token), done](Result<Header> h) {
      if (!h.is_ok()) return done(h.status());
      spdlog::debug("auth: user \"{}\" authenticated", name);
      done(AuthenticateAnswer{h.value(), token});
    });
  }

  static int64_t unix_now_sec() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  // JWT: the hash checked and the revision signed are read under one lock,
  // so a password changed after the check bumps the store past the token's
  // revision and the token is refused (kErrAuthOldRevision), as etcd's.
  void check_and_sign(const std::string& name, const std::string& password,
                      const AuthDone<AuthenticateAnswer>& done) {
    Result<std::string> hash = Status(StatusCode::kUnauthenticated, auth::kErrAuthFailed);
    uint64_t revision = 0;
    sm().with_auth([&](const auth::AuthStore& a) {
      revision = a.revision();
      if (!a.enabled()) {
        hash = Status(StatusCode::kConflict, auth::kErrAuthNotEnabled);
        return;
      }
      const auth::User* u = a.user(name);
      if (u != nullptr && !u->no_password) hash = u->password_hash;
    });
    if (hash.is_ok() && !auth::verify_password(hash.value(), password)) {
      hash = Status(StatusCode::kUnauthenticated, "invalid password");
    }
    if (!hash.is_ok()) {
      note_refusal("Authenticate", auth::Caller{name, 0}, hash.status());
      if (hash.status().message() == auth::kErrAuthNotEnabled) return done(hash.status());
      return done(Status(StatusCode::kUnauthenticated, auth::kErrAuthFailed));
    }
    Result<std::string> token = options_.jwt->sign(name, revision, unix_now_sec());
    if (!token.is_ok()) {
      note_refusal("Authenticate", auth::Caller{name, 0}, token.status());
      return done(Status(StatusCode::kIo, token.status().message()));
    }
    spdlog::debug("auth: user \"{}\" authenticated (JWT at auth revision {})", name, revision);
    done(AuthenticateAnswer{header(), std::move(token).value()});
  }

  // ---- changes --------------------------------------------------------------

  void change(Credentials creds, auth::AuthRequest r, AuthDone<Header> done) {
    if (Status s = check_request(r); !s.is_ok()) return done(s);
    if (r.op == auth::AuthOp::kAuthenticate) {
      return done(Status(StatusCode::kInvalid, "consensuskv: Authenticate is not a change"));
    }
    const bool hashes = (r.op == auth::AuthOp::kUserAdd && !r.no_password) ||
                        r.op == auth::AuthOp::kUserChangePassword;
    if (r.op == auth::AuthOp::kUserAdd && r.no_password) r.secret.clear();
    // A fresh forwarding key with every enable (auth/auth_store.h, forward_key).
    if (r.op == auth::AuthOp::kEnable) r.secret = auth::random_bytes(auth::kForwardKeyBytes);
    // Refused before the (slow) hash if the caller may not do it anyway.
    auto request = std::make_shared<auth::AuthRequest>(std::move(r));
    const std::string what = auth::describe(*request);
    check_current(
        what, [this, creds = std::move(creds)](const AuthDone<auth::Caller>& d) { d(resolve(creds)); },
        [this, request](const auth::Caller& who) {
          fsm::Command c;
          c.request = *request;
          c.caller = who;
          return sm().authorize(c);
        },
        [this, request, hashes, done = std::move(done)](Result<auth::Caller> who) mutable {
          if (!who.is_ok()) return done(who.status());
          if (!hashes) return propose(std::move(who).value(), std::move(*request), std::move(done));
          done = track(std::move(done));
          if (!done) return;
          const bool queued = pool_.try_post(kQueued, [this, caller = std::move(who).value(), request,
                                              done]() mutable {
            std::optional<std::string> hashed = auth::hash_password(request->secret);
            if (!hashed) return done(Status(StatusCode::kIo, "consensuskv: cannot hash the password (out of memory?)"));
            request->secret = std::move(*hashed);
            propose(std::move(caller), std::move(*request), done);
          });
          if (!queued) done(too_many());
        });
  }

  // Proposes r for caller, whose permission was checked (check_current), or
  // an Authenticate (needs none); apply checks again (fsm/authorize.h).
  void propose(auth::Caller caller, auth::AuthRequest r, AuthDone<Header> done) {
    done = track(std::move(done));
    if (!done) return;
    fsm::Command c;
    c.request = std::move(r);
    c.caller = std::move(caller);
    const std::string what = auth::describe(std::get<auth::AuthRequest>(c.request));
    const auth::Caller who = c.caller;
    node_.propose(std::move(c), options_.request_timeout_ms, [this, done, what, who](Result<node::WriteResult> wr) {
      if (!wr.is_ok()) return done(wr.status());
      if (!wr->status.is_ok()) {
        if (may_lag(wr->status)) note_refusal(what + " (at apply)", who, wr->status);
        return done(wr->status);
      }
      Header h = header_for(node_.status(), true);
      if (const auto* a = std::get_if<auth::AuthResponse>(&wr->response)) {
        h.revision = static_cast<uint64_t>(a->header.revision);
      }
      done(h);
    });
  }

  // ---- the front ends' check ------------------------------------------------

  void check_current(const std::string& what, const Identify& identify, const Permit& permit,
                     AuthDone<auth::Caller> done) {
    done = track(std::move(done));
    if (!done) return;
    auto first = [this, what, identify, permit, done](Result<auth::Caller> r) mutable {
      if (r.is_ok() || !may_lag(r.status())) return done(std::move(r));
      // The state may lag: once the barrier is passed this member has
      // applied every auth change committed before the call arrived.
      node_.read_barrier(options_.request_timeout_ms, [this, what, identify, permit, done](const Status& b) mutable {
        const bool queued = recheck_pool_.try_post(kMaxQueuedAuthRechecks, [this, b, what, identify, permit,
                                                                             done]() mutable {
          if (!b.is_ok()) {
            return done(Status(StatusCode::kUnavailable,
                               "consensuskv: cannot confirm this member's auth state (" + b.message() +
                                   "); nothing was done, retry"));
          }
          attempt(what, identify, permit, true, done);
        });
        if (!queued) done(too_many());
      });
    };
    attempt(what, identify, permit, false, std::move(first));
  }

  // identify, then permit; a refusal by permit is logged if it is final (a
  // first one that lag may explain is checked again, check_current).
  void attempt(const std::string& what, const Identify& identify, const Permit& permit, bool last,
               AuthDone<auth::Caller> then) {
    identify([this, what, permit, last, then = std::move(then)](Result<auth::Caller> who) {
      if (!who.is_ok()) return then(who.status());
      Status s = permit(who.value());
      if (s.is_ok()) return then(std::move(who));
      if (last || !may_lag(s)) note_refusal(what, who.value(), s);
      then(s);
    });
  }

  // ---- reads ----------------------------------------------------------------

  // After a read barrier, fn(auth store) under the state machine's shared lock.
  template <typename T>
  void read(const char* what, auth::Caller caller,
            std::function<Result<T>(const auth::AuthStore&, const auth::Caller&)> fn, AuthDone<T> done) {
    done = track(std::move(done));
    if (!done) return;
    node_.read_barrier(options_.request_timeout_ms, [this, what, caller = std::move(caller), fn = std::move(fn),
                                                     done](Status s) {
      if (!s.is_ok()) return done(s);
      Result<T> out = Status(StatusCode::kIo, "unset");
      sm().with_auth([&](const auth::AuthStore& a) { out = fn(a, caller); });
      if (!out.is_ok()) note_refusal(what, caller, out.status());
      done(std::move(out));
    });
  }

  Header header() const { return header_for(node_.status(), true); }

  void user_get(auth::Caller caller, std::string name, AuthDone<UserGetAnswer> done) {
    read<UserGetAnswer>("UserGet", std::move(caller),
                        [this, name = std::move(name)](const auth::AuthStore& a,
                                                       const auth::Caller& who) -> Result<UserGetAnswer> {
                          // etcd: root, or the user asking about itself.
                          if (Status s = a.check_admin(who); !s.is_ok() && who.user != name) return s;
                          const auth::User* u = a.user(name);
                          if (u == nullptr) return Status(StatusCode::kConflict, auth::kErrUserNotFound);
                          return UserGetAnswer{header(), u->roles};
                        },
                        std::move(done));
  }

  void role_get(auth::Caller caller, std::string role, AuthDone<RoleGetAnswer> done) {
    read<RoleGetAnswer>("RoleGet", std::move(caller),
                        [this, role = std::move(role)](const auth::AuthStore& a,
                                                       const auth::Caller& who) -> Result<RoleGetAnswer> {
                          // etcd: root, or a holder of the role.
                          if (Status s = a.check_admin(who); !s.is_ok()) {
                            const auth::User* u = a.user(who.user);
                            if (u == nullptr || !std::binary_search(u->roles.begin(), u->roles.end(), role)) {
                              return s;
                            }
                          }
                          const auth::Role* r = a.role(role);
                          if (r == nullptr) return Status(StatusCode::kConflict, auth::kErrRoleNotFound);
                          return RoleGetAnswer{header(), r->perms};
                        },
                        std::move(done));
  }

  void list(const char* what, bool users, auth::Caller caller, AuthDone<NamesAnswer> done) {
    read<NamesAnswer>(what, std::move(caller),
                      [this, users](const auth::AuthStore& a, const auth::Caller& who) -> Result<NamesAnswer> {
                        if (Status s = a.check_admin(who); !s.is_ok()) return s;
                        return NamesAnswer{header(), users ? a.user_names() : a.role_names()};
                      },
                      std::move(done));
  }

  // ---- refusals -------------------------------------------------------------

  void note_refusal(const std::string& what, const auth::Caller& caller, const Status& why) {
    const auto now = SteadyClock::now();
    uint64_t suppressed = 0;
    {
      std::lock_guard lock(log_mu_);
      if (now - window_start_ >= std::chrono::seconds(1)) {
        suppressed = suppressed_;
        suppressed_ = 0;
        logged_in_window_ = 0;
        window_start_ = now;
      }
      if (logged_in_window_ >= kMaxRefusalLogsPerSec) {
        ++suppressed_;
        return;
      }
      ++logged_in_window_;
    }
    if (suppressed > 0) spdlog::warn("auth: {} more refusals not logged in the last second", suppressed);
    spdlog::warn("auth: refused {} for user \"{}\": {}", what,
                 caller.user.empty() ? "<none>" : caller.user, why.message());
  }

 private:
  // Wraps done so that stop() answers it if nothing else does; null (done
  // answered "server stopped") once stopped.
  template <typename T>
  AuthDone<T> track(AuthDone<T> done) {
    auto fired = std::make_shared<std::atomic<bool>>(false);
    auto once = [fired, done = std::move(done)](Result<T> r) {
      if (!fired->exchange(true)) done(std::move(r));
    };
    uint64_t id = 0;
    {
      std::lock_guard lock(mu_);
      if (!stopped_) {
        id = next_id_++;
        pending_.emplace(id, [once] { once(Status(StatusCode::kUnavailable, kErrStopped)); });
      }
    }
    if (id == 0) {
      once(Status(StatusCode::kUnavailable, kErrStopped));
      return nullptr;
    }
    return [this, once, id](Result<T> r) {
      {
        std::lock_guard lock(mu_);
        pending_.erase(id);
      }
      once(std::move(r));
    };
  }

  node::Node& node_;
  const AuthServiceOptions options_;
  const std::string salt_;  // keys the credential cache: no table of user+password digests to test guesses on
  std::mutex mu_;
  bool stopped_ = false;
  std::unordered_map<uint64_t, std::function<void()>> pending_;
  uint64_t next_id_ = 1;
  std::unordered_map<std::string, Verified> verified_;
  std::mutex log_mu_;
  SteadyClock::time_point window_start_{};
  int logged_in_window_ = 0;
  uint64_t suppressed_ = 0;
  // Password hashing and checking: few threads (argon2id is slow and
  // memory-hungry by design), a bounded queue in front of them (try_post
  // with kMaxQueuedPasswordChecks). Last: its threads stop before the
  // members they use go.
  WorkPool pool_{kMaxConcurrentPasswordChecks, "ckv-auth-hash"};
  // Second checks after a read barrier (check_current): one thread, so a
  // burst of refusals cannot take the password workers.
  WorkPool recheck_pool_{1, "ckv-auth-check"};
};

AuthService::AuthService(node::Node& node, AuthServiceOptions options)
    : impl_(std::make_unique<Impl>(node, options)) {}
AuthService::~AuthService() { impl_->stop(); }

Result<auth::Caller> AuthService::resolve(const Credentials& c) { return impl_->resolve(c); }
std::string AuthService::forward_claim(const Credentials& c) { return impl_->forward_claim(c); }
Status AuthService::require_admin(const Credentials& c, const char* what) {
  Result<auth::Caller> who = impl_->resolve(c);
  if (!who.is_ok()) return who.status();
  Status s;
  impl_->sm().with_auth([&](const auth::AuthStore& a) { s = a.check_admin(who.value()); });
  if (!s.is_ok()) impl_->note_refusal(what, who.value(), s);
  return s;
}
Status AuthService::require_read(const Credentials& c, const std::string& key, const std::string& range_end,
                                 const char* what) {
  Result<auth::Caller> who = impl_->resolve(c);
  if (!who.is_ok()) return who.status();
  Status s;
  impl_->sm().with_auth([&](const auth::AuthStore& a) {
    s = a.check(who.value(), auth::PermType::kRead, key, range_end);
  });
  if (!s.is_ok()) impl_->note_refusal(what, who.value(), s);
  return s;
}
void AuthService::basic(std::string user, std::string password, AuthDone<auth::Caller> done) {
  impl_->basic(std::move(user), std::move(password), std::move(done));
}
void AuthService::authenticate(std::string name, std::string password, AuthDone<AuthenticateAnswer> done) {
  impl_->authenticate(std::move(name), std::move(password), std::move(done));
}
void AuthService::change(Credentials creds, auth::AuthRequest r, AuthDone<Header> done) {
  impl_->change(std::move(creds), std::move(r), std::move(done));
}
void AuthService::user_get(auth::Caller caller, std::string name, AuthDone<UserGetAnswer> done) {
  impl_->user_get(std::move(caller), std::move(name), std::move(done));
}
void AuthService::role_get(auth::Caller caller, std::string role, AuthDone<RoleGetAnswer> done) {
  impl_->role_get(std::move(caller), std::move(role), std::move(done));
}
void AuthService::user_list(auth::Caller caller, AuthDone<NamesAnswer> done) {
  impl_->list("UserList", true, std::move(caller), std::move(done));
}
void AuthService::role_list(auth::Caller caller, AuthDone<NamesAnswer> done) {
  impl_->list("RoleList", false, std::move(caller), std::move(done));
}
void AuthService::check_current(const std::string& what, const Identify& identify, const Permit& permit,
                                AuthDone<auth::Caller> done) {
  impl_->check_current(what, identify, permit, std::move(done));
}
void AuthService::note_refusal(const std::string& what, const auth::Caller& caller, const Status& why) {
  impl_->note_refusal(what, caller, why);
}
void AuthService::note_if_refused(const std::string& what, const auth::Caller& caller, const Status& outcome) {
  if (!outcome.is_ok() && may_lag(outcome)) impl_->note_refusal(what + " (at apply)", caller, outcome);
}
void AuthService::stop() { impl_->stop(); }

}  // namespace ckv::etcd
