// Unit tests for src/auth/: the permission checker, the auth store's rules and encoding, and auth at apply in the state machine.
#include <gtest/gtest.h>

#include "auth/auth_store.h"
#include "auth/password.h"
#include "auth/permissions.h"
#include "auth/simple_tokens.h"
#include "fsm/command.h"
#include "fsm/kv_state_machine.h"

namespace ckv::auth {
namespace {

const std::string kFromKey(1, '\0');

Permission perm(PermType t, std::string key, std::string end = "") {
  return Permission{t, std::move(key), std::move(end)};
}

bool covered(const std::vector<Permission>& grants, PermType want, const std::string& key,
             const std::string& end = "") {
  std::vector<const Permission*> ptrs;
  for (const Permission& p : grants) ptrs.push_back(&p);
  return covers(ptrs, want, key, end);
}

TEST(AuthPermissions, SingleKeyGrantCoversOnlyThatKey) {
  const std::vector<Permission> g = {perm(PermType::kRead, "a")};
  EXPECT_TRUE(covered(g, PermType::kRead, "a"));
  EXPECT_FALSE(covered(g, PermType::kRead, "a0"));
  EXPECT_FALSE(covered(g, PermType::kRead, "b"));
  EXPECT_FALSE(covered(g, PermType::kWrite, "a"));
  // The range holding just "a" is [a, a\0).
  EXPECT_TRUE(covered(g, PermType::kRead, "a", std::string("a\0", 2)));
  EXPECT_FALSE(covered(g, PermType::kRead, "a", "b"));
}

TEST(AuthPermissions, RangeAndPrefixGrants) {
  // etcdctl role grant-permission --prefix r readwrite /app/  ->  [/app/, /app0)
  const std::vector<Permission> g = {perm(PermType::kReadWrite, "/app/", "/app0")};
  EXPECT_TRUE(covered(g, PermType::kRead, "/app/x"));
  EXPECT_TRUE(covered(g, PermType::kWrite, "/app/x"));
  EXPECT_TRUE(covered(g, PermType::kRead, "/app/", "/app0"));   // get --prefix /app/
  EXPECT_TRUE(covered(g, PermType::kRead, "/app/a", "/app/b"));  // a sub-range
  EXPECT_FALSE(covered(g, PermType::kRead, "/app", "/app0"));    // starts before the grant
  EXPECT_FALSE(covered(g, PermType::kRead, "/app/", "/app1"));   // ends after it
  EXPECT_FALSE(covered(g, PermType::kWrite, "/other"));
  EXPECT_FALSE(covered(g, PermType::kRead, "/app/", kFromKey));  // unbounded request
}

TEST(AuthPermissions, FromKeyGrantCoversEverythingAfterItsKey) {
  const std::vector<Permission> g = {perm(PermType::kRead, "m", kFromKey)};
  EXPECT_TRUE(covered(g, PermType::kRead, "m"));
  EXPECT_TRUE(covered(g, PermType::kRead, "zzzz"));
  EXPECT_TRUE(covered(g, PermType::kRead, "n", kFromKey));
  EXPECT_TRUE(covered(g, PermType::kRead, "m", "q"));
  EXPECT_FALSE(covered(g, PermType::kRead, "l"));
  EXPECT_FALSE(covered(g, PermType::kRead, "a", kFromKey));
  // Every key: key "" with range_end "\0" (etcdctl --from-key "").
  const std::vector<Permission> all = {perm(PermType::kRead, "", kFromKey)};
  EXPECT_TRUE(covered(all, PermType::kRead, std::string(1, '\0'), kFromKey));
  EXPECT_TRUE(covered(all, PermType::kRead, "", kFromKey));
}

TEST(AuthPermissions, OverlappingAndAbuttingGrantsCoverTheirUnion) {
  const std::vector<Permission> g = {perm(PermType::kRead, "a", "c"), perm(PermType::kRead, "c", "e"),
                                     perm(PermType::kRead, "d", "f")};
  EXPECT_TRUE(covered(g, PermType::kRead, "b", "d"));
  EXPECT_TRUE(covered(g, PermType::kRead, "a", "f"));
  EXPECT_FALSE(covered(g, PermType::kRead, "a", "g"));
  // A gap between grants is not covered.
  const std::vector<Permission> gap = {perm(PermType::kRead, "a", "c"), perm(PermType::kRead, "d", "f")};
  EXPECT_FALSE(covered(gap, PermType::kRead, "a", "e"));
  EXPECT_TRUE(covered(gap, PermType::kRead, "d", "e"));
  // READ and WRITE grants on halves do not make READWRITE on the whole.
  const std::vector<Permission> mixed = {perm(PermType::kRead, "a", "c"), perm(PermType::kWrite, "c", "e")};
  EXPECT_FALSE(covered(mixed, PermType::kRead, "a", "e"));
  EXPECT_TRUE(covered(mixed, PermType::kWrite, "c", "d"));
}

TEST(AuthPermissions, EmptyRangesCoverNothing) {
  const std::vector<Permission> g = {perm(PermType::kRead, "", kFromKey)};
  EXPECT_FALSE(covered(g, PermType::kRead, "b", "a"));  // range_end before key, as etcd
  const std::vector<Permission> empty_grant = {perm(PermType::kRead, "b", "a")};
  EXPECT_FALSE(covered(empty_grant, PermType::kRead, "b"));
}

AuthRequest req(AuthOp op, std::string name = "", std::string role = "") {
  AuthRequest r;
  r.op = op;
  r.name = std::move(name);
  r.role = std::move(role);
  return r;
}

AuthRequest grant(std::string role, Permission p) {
  AuthRequest r = req(AuthOp::kRoleGrantPermission, "", std::move(role));
  r.perm = std::move(p);
  return r;
}

// root with the root role, alice with role "app" (READWRITE on the prefix /app/), auth enabled.
AuthStore enabled_store() {
  AuthStore s;
  AuthRequest root = req(AuthOp::kUserAdd, "root");
  root.secret = "hash-root";
  EXPECT_TRUE(s.apply(root).is_ok());
  AuthRequest alice = req(AuthOp::kUserAdd, "alice");
  alice.secret = "hash-alice";
  EXPECT_TRUE(s.apply(alice).is_ok());
  EXPECT_TRUE(s.apply(req(AuthOp::kRoleAdd, "", "app")).is_ok());
  EXPECT_TRUE(s.apply(grant("app", perm(PermType::kReadWrite, "/app/", "/app0"))).is_ok());
  EXPECT_TRUE(s.apply(req(AuthOp::kUserGrantRole, "alice", "app")).is_ok());
  EXPECT_TRUE(s.apply(req(AuthOp::kUserGrantRole, "root", kRootRole)).is_ok());
  EXPECT_TRUE(s.apply(req(AuthOp::kEnable)).is_ok());
  return s;
}

TEST(AuthStore, EnableNeedsRootWithTheRootRole) {
  AuthStore s;
  EXPECT_EQ(s.apply(req(AuthOp::kEnable)).message(), kErrRootUserNotExist);
  AuthRequest root = req(AuthOp::kUserAdd, "root");
  root.secret = "h";
  ASSERT_TRUE(s.apply(root).is_ok());
  EXPECT_EQ(s.apply(req(AuthOp::kEnable)).message(), kErrRootRoleNotExist);
  ASSERT_TRUE(s.apply(req(AuthOp::kUserGrantRole, "root", kRootRole)).is_ok());
  const uint64_t rev = s.revision();
  EXPECT_TRUE(s.apply(req(AuthOp::kEnable)).is_ok());
  EXPECT_TRUE(s.enabled());
  EXPECT_EQ(s.revision(), rev);  // etcd keeps the revision on enable
  EXPECT_TRUE(s.apply(req(AuthOp::kEnable)).is_ok());  // again: ignored
  // With auth on, root stays root.
  EXPECT_EQ(s.apply(req(AuthOp::kUserDelete, "root")).message(), kErrInvalidAuthMgmt);
  EXPECT_EQ(s.apply(req(AuthOp::kUserRevokeRole, "root", kRootRole)).message(), kErrInvalidAuthMgmt);
  EXPECT_EQ(s.apply(req(AuthOp::kRoleDelete, "", kRootRole)).message(), kErrInvalidAuthMgmt);
  EXPECT_TRUE(s.apply(req(AuthOp::kDisable)).is_ok());
  EXPECT_GT(s.revision(), rev);
}

TEST(AuthStore, ErrorsAreEtcds) {
  AuthStore s = enabled_store();
  AuthRequest dup = req(AuthOp::kUserAdd, "alice");
  EXPECT_EQ(s.apply(dup).message(), kErrUserAlreadyExist);
  EXPECT_EQ(s.apply(req(AuthOp::kUserAdd, "")).message(), kErrUserEmpty);
  EXPECT_EQ(s.apply(req(AuthOp::kRoleAdd, "", "app")).message(), kErrRoleAlreadyExist);
  EXPECT_EQ(s.apply(req(AuthOp::kRoleAdd, "", "")).message(), kErrRoleEmpty);
  EXPECT_EQ(s.apply(req(AuthOp::kUserDelete, "bob")).message(), kErrUserNotFound);
  EXPECT_EQ(s.apply(req(AuthOp::kUserGrantRole, "alice", "nope")).message(), kErrRoleNotFound);
  EXPECT_EQ(s.apply(req(AuthOp::kUserRevokeRole, "alice", "nope")).message(), kErrRoleNotGranted);
  AuthRequest revoke = req(AuthOp::kRoleRevokePermission, "", "app");
  revoke.perm.key = "/zzz";
  EXPECT_EQ(s.apply(revoke).message(), kErrPermissionNotGranted);
}

TEST(AuthStore, ChecksFollowGrantsRevokesAndRevisions) {
  AuthStore s = enabled_store();
  const Caller alice{"alice", s.revision()};
  EXPECT_TRUE(s.check(alice, PermType::kWrite, "/app/x", "").is_ok());
  EXPECT_EQ(s.check(alice, PermType::kWrite, "/other", "").message(), kErrPermissionDenied);
  EXPECT_EQ(s.check(Caller{}, PermType::kRead, "/app/x", "").message(), kErrUserEmpty);
  EXPECT_EQ(s.check(Caller{"ghost", s.revision()}, PermType::kRead, "/app/x", "").message(), kErrPermissionDenied);
  EXPECT_TRUE(s.check(Caller{"root", s.revision()}, PermType::kWrite, "/anything", "").is_ok());
  EXPECT_EQ(s.check_admin(alice).message(), kErrPermissionDenied);
  EXPECT_TRUE(s.check_admin(Caller{"root", s.revision()}).is_ok());

  // A revoked grant: checked at the old revision, the request is refused as
  // stale (the client retries); at the new one, denied.
  AuthRequest revoke = req(AuthOp::kRoleRevokePermission, "", "app");
  revoke.perm.key = "/app/";
  revoke.perm.range_end = "/app0";
  ASSERT_TRUE(s.apply(revoke).is_ok());
  EXPECT_EQ(s.check(alice, PermType::kWrite, "/app/x", "").message(), kErrAuthOldRevision);
  EXPECT_EQ(s.check(Caller{"alice", s.revision()}, PermType::kWrite, "/app/x", "").message(),
            kErrPermissionDenied);
  // Deleting a role takes it from its users.
  ASSERT_TRUE(s.apply(grant("app", perm(PermType::kRead, "k"))).is_ok());
  ASSERT_TRUE(s.apply(req(AuthOp::kRoleDelete, "", "app")).is_ok());
  EXPECT_TRUE(s.user("alice")->roles.empty());
}

TEST(AuthStore, GrantingTheSameRangeAgainUpdatesItInPlace) {
  AuthStore s = enabled_store();
  ASSERT_TRUE(s.apply(grant("app", perm(PermType::kRead, "/app/", "/app0"))).is_ok());
  ASSERT_EQ(s.role("app")->perms.size(), 1u);
  EXPECT_EQ(s.role("app")->perms[0].type, PermType::kRead);
  const Caller alice{"alice", s.revision()};
  EXPECT_EQ(s.check(alice, PermType::kWrite, "/app/x", "").message(), kErrPermissionDenied);
}

TEST(AuthStore, AuthenticateNeedsThePasswordHashItWasCheckedAgainst) {
  AuthStore s = enabled_store();
  AuthRequest a = req(AuthOp::kAuthenticate, "alice");
  a.secret = std::string(kDigestBytes, 't') + sha256("hash-alice");
  EXPECT_TRUE(s.apply(a).is_ok());
  AuthRequest change = req(AuthOp::kUserChangePassword, "alice");
  change.secret = "hash-alice-2";
  ASSERT_TRUE(s.apply(change).is_ok());
  // Checked against the old password, applied after the change: refused.
  EXPECT_EQ(s.apply(a).message(), kErrAuthFailed);
  AuthRequest unknown = req(AuthOp::kAuthenticate, "bob");
  unknown.secret = a.secret;
  EXPECT_EQ(s.apply(unknown).message(), kErrAuthFailed);
}

TEST(AuthStore, EncodingRoundTripsAndRefusesDamage) {
  const AuthStore s = enabled_store();
  const std::string bytes = s.encode();
  auto back = AuthStore::decode(bytes);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, s);
  EXPECT_EQ(back->encode(), bytes);
  // Every strict prefix is refused; so is a trailing byte.
  for (size_t n = 0; n < bytes.size(); ++n) EXPECT_FALSE(AuthStore::decode(bytes.substr(0, n))) << n;
  EXPECT_FALSE(AuthStore::decode(bytes + "x"));
  // Flipped bytes never crash, and what decodes re-encodes to itself.
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string bad = bytes;
    bad[i] = static_cast<char>(bad[i] ^ 0x5a);
    if (auto d = AuthStore::decode(bad)) {
      EXPECT_EQ(d->encode(), bad) << i;
    }
  }
}

TEST(AuthCommand, CallerAndAuthRequestsRoundTrip) {
  fsm::Command c;
  c.request = grant("app", perm(PermType::kWrite, "a", "b"));
  c.caller = Caller{"root", 7};
  c.idempotency_key = "k";
  const std::string bytes = fsm::encode_command(c);
  auto back = fsm::decode_command(bytes);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->caller, c.caller);
  EXPECT_EQ(std::get<AuthRequest>(back->request), std::get<AuthRequest>(c.request));
  EXPECT_EQ(fsm::encode_command(*back), bytes);
  for (size_t n = 0; n < bytes.size(); ++n) EXPECT_FALSE(fsm::decode_command(bytes.substr(0, n))) << n;

  // A plain write without a caller stays format 2, which older members read.
  fsm::Command plain;
  plain.request = mvcc::PutRequest{"k", "v", 0, false, false, false};
  EXPECT_EQ(fsm::encode_command(plain)[0], 2);
  fsm::Command system = plain;
  system.system = true;
  auto sys = fsm::decode_command(fsm::encode_command(system));
  ASSERT_TRUE(sys.has_value());
  EXPECT_TRUE(sys->system);
}

TEST(AuthTokens, RenewedOnUseForgottenWhenUnusedOrInvalidated) {
  using Clock = SimpleTokens::Clock;
  SimpleTokens t(1000);
  const Clock::time_point t0 = Clock::now();
  const std::string token = SimpleTokens::generate();
  EXPECT_EQ(token.size(), kSimpleTokenLetters);
  EXPECT_NE(token, SimpleTokens::generate());
  t.add(SimpleTokens::digest(token), "alice", t0);
  EXPECT_EQ(t.user_of(token, t0 + std::chrono::milliseconds(900)), "alice");
  // Used at 900 ms, so valid until 1900 ms.
  EXPECT_EQ(t.user_of(token, t0 + std::chrono::milliseconds(1800)), "alice");
  EXPECT_FALSE(t.user_of(token, t0 + std::chrono::milliseconds(2900)));
  t.add(SimpleTokens::digest(token), "alice", t0);
  t.invalidate_user("alice");
  EXPECT_FALSE(t.user_of(token, t0));
  EXPECT_FALSE(t.user_of("not-a-token", t0));
}

TEST(AuthPassword, HashesVerifyAndAreSalted) {
  const auto h1 = hash_password("secret");
  const auto h2 = hash_password("secret");
  ASSERT_TRUE(h1 && h2);
  EXPECT_NE(*h1, *h2);
  EXPECT_EQ(h1->find("secret"), std::string::npos);
  EXPECT_TRUE(verify_password(*h1, "secret"));
  EXPECT_FALSE(verify_password(*h1, "secreT"));
  EXPECT_FALSE(verify_password("", "secret"));
  EXPECT_FALSE(verify_password("garbage", "secret"));
}

// --- auth at apply, in the state machine --------------------------------------

uint64_t g_index = 0;

fsm::ApplyResult apply(fsm::KvStateMachine& sm, fsm::Request r, Caller caller = {"root", 0}) {
  fsm::Command c;
  c.request = std::move(r);
  c.caller = std::move(caller);
  if (c.caller.user == "root" && c.caller.revision == 0) c.caller.revision = sm.auth_revision();
  return sm.apply(++g_index, c);
}

void set_up(fsm::KvStateMachine& sm) {
  const AuthStore want = enabled_store();
  // The same changes, through the log's path.
  AuthRequest root = req(AuthOp::kUserAdd, "root");
  root.secret = "hash-root";
  ASSERT_TRUE(apply(sm, root).status.is_ok());
  AuthRequest alice = req(AuthOp::kUserAdd, "alice");
  alice.secret = "hash-alice";
  ASSERT_TRUE(apply(sm, alice).status.is_ok());
  ASSERT_TRUE(apply(sm, req(AuthOp::kRoleAdd, "", "app")).status.is_ok());
  ASSERT_TRUE(apply(sm, grant("app", perm(PermType::kReadWrite, "/app/", "/app0"))).status.is_ok());
  ASSERT_TRUE(apply(sm, req(AuthOp::kUserGrantRole, "alice", "app")).status.is_ok());
  ASSERT_TRUE(apply(sm, req(AuthOp::kUserGrantRole, "root", kRootRole)).status.is_ok());
  ASSERT_TRUE(apply(sm, req(AuthOp::kEnable)).status.is_ok());
  sm.with_auth([&](const AuthStore& a) { EXPECT_EQ(a, want); });
}

TEST(AuthApply, AWriteCheckedBeforeARevokeIsRefusedAtApply) {
  fsm::KvStateMachine sm;
  set_up(sm);
  const Caller alice{"alice", sm.auth_revision()};
  fsm::Command put;
  put.request = mvcc::PutRequest{"/app/x", "1", 0, false, false, false};
  put.caller = alice;
  ASSERT_TRUE(sm.authorize(put).is_ok());  // what the front end checked
  // The grant goes before the write reaches the log...
  AuthRequest revoke = req(AuthOp::kRoleRevokePermission, "", "app");
  revoke.perm.key = "/app/";
  revoke.perm.range_end = "/app0";
  ASSERT_TRUE(apply(sm, revoke).status.is_ok());
  // ...so applying the write refuses it, and nothing is written.
  const int64_t rev = sm.revision();
  fsm::ApplyResult r = sm.apply(++g_index, put);
  EXPECT_EQ(r.status.message(), kErrAuthOldRevision);
  EXPECT_EQ(sm.revision(), rev);
  EXPECT_FALSE(sm.get("/app/x"));
}

TEST(AuthApply, EveryRequestKindIsChecked) {
  fsm::KvStateMachine sm;
  set_up(sm);
  const Caller alice{"alice", sm.auth_revision()};
  EXPECT_TRUE(apply(sm, mvcc::PutRequest{"/app/x", "1", 0, false, false, false}, alice).status.is_ok());
  EXPECT_EQ(apply(sm, mvcc::PutRequest{"/other", "1", 0, false, false, false}, alice).status.message(),
            kErrPermissionDenied);
  EXPECT_EQ(apply(sm, mvcc::PutRequest{"/app/x", "1", 0, false, false, false}, Caller{}).status.message(),
            kErrUserEmpty);
  mvcc::DeleteRangeRequest del;
  del.key = "/app/";
  del.range_end = kFromKey;
  EXPECT_EQ(apply(sm, del, alice).status.message(), kErrPermissionDenied);
  // A txn whose nested txn writes outside the grant.
  auto nested = std::make_shared<mvcc::TxnRequest>();
  nested->success.push_back(mvcc::RequestOp{mvcc::PutRequest{"/other", "1", 0, false, false, false}});
  mvcc::TxnRequest t;
  t.success.push_back(mvcc::RequestOp{std::shared_ptr<const mvcc::TxnRequest>(nested)});
  EXPECT_EQ(apply(sm, t, alice).status.message(), kErrPermissionDenied);
  EXPECT_EQ(apply(sm, mvcc::CompactionRequest{1, false}, alice).status.message(), kErrPermissionDenied);
  // Auth changes need root.
  EXPECT_EQ(apply(sm, req(AuthOp::kRoleAdd, "", "x"), alice).status.message(), kErrPermissionDenied);
  // Reads, under one lock with their check.
  mvcc::RangeRequest other;
  other.key = "/other";
  EXPECT_EQ(sm.range_as(alice, other).status().message(), kErrPermissionDenied);
  mvcc::RangeRequest mine;
  mine.key = "/app/x";
  ASSERT_TRUE(sm.range_as(alice, mine).is_ok());
  // A lease revoke needs WRITE on its keys; the node's own (expiry) needs nothing.
  ASSERT_TRUE(apply(sm, lease::GrantRequest{7, 60}, alice).status.is_ok());
  ASSERT_TRUE(apply(sm, mvcc::PutRequest{"/secret", "s", 7, false, false, false}).status.is_ok());
  EXPECT_EQ(apply(sm, lease::RevokeRequest{7}, alice).status.message(), kErrPermissionDenied);
  fsm::Command expiry;
  expiry.request = lease::RevokeRequest{7};
  expiry.system = true;
  EXPECT_TRUE(sm.apply(++g_index, expiry).status.is_ok());
}

TEST(AuthApply, SnapshotCarriesTheAuthState) {
  fsm::KvStateMachine sm;
  set_up(sm);
  auto state = fsm::KvStateMachine::decode_payload(sm.encode_payload());
  ASSERT_TRUE(state.is_ok());
  fsm::KvStateMachine other;
  other.restore(std::move(state).value(), g_index);
  sm.with_auth([&](const AuthStore& a) { other.with_auth([&](const AuthStore& b) { EXPECT_EQ(a, b); }); });
  EXPECT_TRUE(other.auth_enabled());
}

}  // namespace
}  // namespace ckv::auth
