// Unit tests for src/etcd/kv_convert.h: every field of etcd's KV messages both ways, nested txns, and etcd's error table.
#include "etcd/kv_convert.h"

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include "mvcc/errors.h"

namespace ckv::etcd {
namespace {

using google::protobuf::util::MessageDifferencer;

// Distinct values per field, so a field copied into the wrong place shows.
pb::RangeRequest full_range() {
  pb::RangeRequest r;
  r.set_key("k");
  r.set_range_end("kz");
  r.set_limit(3);
  r.set_revision(4);
  r.set_sort_order(pb::RangeRequest::DESCEND);
  r.set_sort_target(pb::RangeRequest::MOD);
  r.set_serializable(true);
  r.set_keys_only(true);
  r.set_count_only(true);
  r.set_min_mod_revision(10);
  r.set_max_mod_revision(11);
  r.set_min_create_revision(12);
  r.set_max_create_revision(13);
  return r;
}

TEST(EtcdKvConvert, RangeRequestEveryField) {
  const mvcc::RangeRequest m = from_pb(full_range());
  EXPECT_EQ(m.key, "k");
  EXPECT_EQ(m.range_end, "kz");
  EXPECT_EQ(m.limit, 3);
  EXPECT_EQ(m.revision, 4);
  EXPECT_EQ(m.sort_order, mvcc::SortOrder::kDescend);
  EXPECT_EQ(m.sort_target, mvcc::SortTarget::kMod);
  EXPECT_TRUE(m.serializable);
  EXPECT_TRUE(m.keys_only);
  EXPECT_TRUE(m.count_only);
  EXPECT_EQ(m.min_mod_revision, 10);
  EXPECT_EQ(m.max_mod_revision, 11);
  EXPECT_EQ(m.min_create_revision, 12);
  EXPECT_EQ(m.max_create_revision, 13);
  pb::RangeRequest back;
  to_pb(m, &back);
  EXPECT_TRUE(MessageDifferencer::Equals(back, full_range())) << back.DebugString();
}

TEST(EtcdKvConvert, EnumsOutsideTheProtoPassThroughForTheStoreToRefuse) {
  pb::RangeRequest r;
  r.set_key("k");
  r.set_sort_target(static_cast<pb::RangeRequest_SortTarget>(9));
  r.set_sort_order(static_cast<pb::RangeRequest_SortOrder>(7));
  const mvcc::RangeRequest m = from_pb(r);
  EXPECT_EQ(static_cast<int>(m.sort_target), 9);
  EXPECT_EQ(static_cast<int>(m.sort_order), 7);
  pb::RangeRequest back;
  to_pb(m, &back);
  EXPECT_EQ(static_cast<int>(back.sort_target()), 9);
  EXPECT_EQ(static_cast<int>(back.sort_order()), 7);
}

TEST(EtcdKvConvert, PutDeleteCompactionEveryField) {
  pb::PutRequest p;
  p.set_key("a");
  p.set_value("b");
  p.set_lease(7);
  p.set_prev_kv(true);
  p.set_ignore_value(true);
  p.set_ignore_lease(true);
  const mvcc::PutRequest mp = from_pb(p);
  EXPECT_EQ(mp.key, "a");
  EXPECT_EQ(mp.value, "b");
  EXPECT_EQ(mp.lease, 7);
  EXPECT_TRUE(mp.prev_kv && mp.ignore_value && mp.ignore_lease);
  pb::PutRequest p2;
  to_pb(mp, &p2);
  EXPECT_TRUE(MessageDifferencer::Equals(p, p2));
  // Each flag alone, so one copied from another shows.
  for (int f = 0; f < 3; ++f) {
    pb::PutRequest one;
    one.set_key("a");
    if (f == 0) one.set_prev_kv(true);
    if (f == 1) one.set_ignore_value(true);
    if (f == 2) one.set_ignore_lease(true);
    const mvcc::PutRequest m = from_pb(one);
    EXPECT_EQ(m.prev_kv, f == 0);
    EXPECT_EQ(m.ignore_value, f == 1);
    EXPECT_EQ(m.ignore_lease, f == 2);
  }

  pb::DeleteRangeRequest d;
  d.set_key("a");
  d.set_range_end(std::string(1, '\0'));
  d.set_prev_kv(true);
  const mvcc::DeleteRangeRequest md = from_pb(d);
  EXPECT_EQ(md.key, "a");
  EXPECT_EQ(md.range_end, std::string(1, '\0'));
  EXPECT_TRUE(md.prev_kv);
  pb::DeleteRangeRequest d2;
  to_pb(md, &d2);
  EXPECT_TRUE(MessageDifferencer::Equals(d, d2));

  pb::CompactionRequest c;
  c.set_revision(42);
  c.set_physical(true);
  const mvcc::CompactionRequest mc = from_pb(c);
  EXPECT_EQ(mc.revision, 42);
  EXPECT_TRUE(mc.physical);
  pb::CompactionRequest c2;
  to_pb(mc, &c2);
  EXPECT_TRUE(MessageDifferencer::Equals(c, c2));
}

TEST(EtcdKvConvert, CompareReadsTheAlternativeItsTargetNames) {
  struct Case {
    pb::Compare::CompareTarget target;
    void (*set)(pb::Compare*);
    int64_t mvcc::Compare::*field;  // null for VALUE
  };
  const Case cases[] = {
      {pb::Compare::VERSION, [](pb::Compare* c) { c->set_version(5); }, &mvcc::Compare::version},
      {pb::Compare::CREATE, [](pb::Compare* c) { c->set_create_revision(5); },
       &mvcc::Compare::create_revision},
      {pb::Compare::MOD, [](pb::Compare* c) { c->set_mod_revision(5); },
       &mvcc::Compare::mod_revision},
      {pb::Compare::LEASE, [](pb::Compare* c) { c->set_lease(5); }, &mvcc::Compare::lease},
      {pb::Compare::VALUE, [](pb::Compare* c) { c->set_value("v"); }, nullptr},
  };
  for (const Case& k : cases) {
    pb::Compare c;
    c.set_key("key");
    c.set_range_end("kez");
    c.set_result(pb::Compare::NOT_EQUAL);
    c.set_target(k.target);
    k.set(&c);
    const mvcc::Compare m = from_pb(c);
    EXPECT_EQ(m.key, "key");
    EXPECT_EQ(m.range_end, "kez");
    EXPECT_EQ(m.result, mvcc::Compare::CompareResult::kNotEqual);
    EXPECT_EQ(static_cast<int>(m.target), static_cast<int>(k.target));
    if (k.field != nullptr) {
      EXPECT_EQ(m.*k.field, 5) << k.target;
    } else {
      EXPECT_EQ(m.value, "v");
    }
    pb::Compare back;
    to_pb(m, &back);
    EXPECT_TRUE(MessageDifferencer::Equals(c, back)) << back.DebugString();
  }
  // A union that does not match the target: the target's field stays zero
  // (etcd compares against the zero value), and nothing else is set on the way back.
  pb::Compare odd;
  odd.set_key("k");
  odd.set_target(pb::Compare::MOD);
  odd.set_version(9);
  const mvcc::Compare m = from_pb(odd);
  EXPECT_EQ(m.mod_revision, 0);
  pb::Compare back;
  to_pb(m, &back);
  EXPECT_EQ(back.target_union_case(), pb::Compare::kModRevision);
  EXPECT_EQ(back.mod_revision(), 0);
}

pb::TxnRequest nested_txn() {
  pb::TxnRequest t;
  pb::Compare* c = t.add_compare();
  c->set_key("a");
  c->set_target(pb::Compare::VALUE);
  c->set_value("x");
  *t.add_success()->mutable_request_range() = full_range();
  t.add_success()->mutable_request_put()->set_key("p");
  t.add_success()->mutable_request_delete_range()->set_key("d");
  pb::TxnRequest* inner = t.add_success()->mutable_request_txn();
  pb::Compare* ic = inner->add_compare();
  ic->set_key("b");
  ic->set_target(pb::Compare::VERSION);
  ic->set_result(pb::Compare::GREATER);
  ic->set_version(2);
  inner->add_failure()->mutable_request_put()->set_key("q");
  t.add_failure()->mutable_request_delete_range()->set_key("e");
  t.add_failure();  // an op with no request
  return t;
}

TEST(EtcdKvConvert, TxnRequestNestedBothWays) {
  const pb::TxnRequest t = nested_txn();
  const mvcc::TxnRequest m = from_pb(t);
  ASSERT_EQ(m.compare.size(), 1u);
  EXPECT_EQ(m.compare[0].value, "x");
  ASSERT_EQ(m.success.size(), 4u);
  EXPECT_EQ(std::get<mvcc::RangeRequest>(m.success[0].request).max_create_revision, 13);
  EXPECT_EQ(std::get<mvcc::PutRequest>(m.success[1].request).key, "p");
  EXPECT_EQ(std::get<mvcc::DeleteRangeRequest>(m.success[2].request).key, "d");
  const auto& in = std::get<std::shared_ptr<const mvcc::TxnRequest>>(m.success[3].request);
  ASSERT_TRUE(in);
  EXPECT_EQ(in->compare[0].version, 2);
  EXPECT_EQ(in->compare[0].result, mvcc::Compare::CompareResult::kGreater);
  EXPECT_TRUE(in->success.empty());
  EXPECT_EQ(std::get<mvcc::PutRequest>(in->failure[0].request).key, "q");
  ASSERT_EQ(m.failure.size(), 2u);
  EXPECT_EQ(std::get<mvcc::DeleteRangeRequest>(m.failure[0].request).key, "e");
  EXPECT_TRUE(std::holds_alternative<std::monostate>(m.failure[1].request));
  pb::TxnRequest back;
  to_pb(m, &back);
  EXPECT_TRUE(MessageDifferencer::Equals(t, back)) << back.DebugString();
}

mvcc::KeyValue kv(const std::string& key, int64_t rev) {
  return mvcc::KeyValue{key, rev - 1, rev, 3, "val-" + key, 99};
}

TEST(EtcdKvConvert, ResponsesCarryTheNodeHeaderAtTopLevelOnly) {
  const Header h{111, 222, 0, 333};
  mvcc::RangeResponse r;
  r.header.revision = 9;
  r.kvs = {kv("a", 5), kv("b", 6)};
  r.more = true;
  r.count = 7;
  pb::RangeResponse pr;
  to_pb(r, &h, &pr);
  EXPECT_EQ(pr.header().cluster_id(), 111u);
  EXPECT_EQ(pr.header().member_id(), 222u);
  EXPECT_EQ(pr.header().raft_term(), 333u);
  EXPECT_EQ(pr.header().revision(), 9);
  ASSERT_EQ(pr.kvs_size(), 2);
  EXPECT_EQ(pr.kvs(1).key(), "b");
  EXPECT_EQ(pr.kvs(1).create_revision(), 5);
  EXPECT_EQ(pr.kvs(1).mod_revision(), 6);
  EXPECT_EQ(pr.kvs(1).version(), 3);
  EXPECT_EQ(pr.kvs(1).value(), "val-b");
  EXPECT_EQ(pr.kvs(1).lease(), 99);
  EXPECT_TRUE(pr.more());
  EXPECT_EQ(pr.count(), 7);
  EXPECT_EQ(from_pb(pr), r);

  mvcc::PutResponse p;
  p.header.revision = 10;
  p.prev_kv = kv("a", 5);
  pb::PutResponse pp;
  to_pb(p, &h, &pp);
  EXPECT_TRUE(pp.has_prev_kv());
  EXPECT_EQ(from_pb(pp), p);
  p.prev_kv.reset();
  pp.Clear();
  to_pb(p, &h, &pp);
  EXPECT_FALSE(pp.has_prev_kv());
  EXPECT_EQ(from_pb(pp), p);

  mvcc::DeleteRangeResponse d;
  d.header.revision = 11;
  d.deleted = 2;
  d.prev_kvs = {kv("x", 3), kv("y", 4)};
  pb::DeleteRangeResponse pd;
  to_pb(d, &h, &pd);
  EXPECT_EQ(pd.deleted(), 2);
  EXPECT_EQ(pd.prev_kvs(0).key(), "x");
  EXPECT_EQ(from_pb(pd), d);

  mvcc::TxnResponse inner;
  inner.header.revision = 12;
  inner.succeeded = false;
  inner.responses = {mvcc::ResponseOp{d}};
  mvcc::TxnResponse t;
  t.header.revision = 12;
  t.succeeded = true;
  t.responses = {mvcc::ResponseOp{r}, mvcc::ResponseOp{p}, mvcc::ResponseOp{d},
                 mvcc::ResponseOp{std::make_shared<mvcc::TxnResponse>(inner)}};
  pb::TxnResponse pt;
  to_pb(t, &h, &pt);
  EXPECT_TRUE(pt.succeeded());
  ASSERT_EQ(pt.responses_size(), 4);
  EXPECT_EQ(pt.responses(0).response_case(), pb::ResponseOp::kResponseRange);
  EXPECT_EQ(pt.responses(1).response_case(), pb::ResponseOp::kResponsePut);
  EXPECT_EQ(pt.responses(2).response_case(), pb::ResponseOp::kResponseDeleteRange);
  EXPECT_EQ(pt.responses(3).response_case(), pb::ResponseOp::kResponseTxn);
  // Nested responses: only their revision, as etcd's txn responses show.
  const pb::ResponseHeader& nested = pt.responses(0).response_range().header();
  EXPECT_EQ(nested.revision(), 9);
  EXPECT_EQ(nested.cluster_id(), 0u);
  EXPECT_EQ(nested.member_id(), 0u);
  EXPECT_EQ(nested.raft_term(), 0u);
  EXPECT_FALSE(pt.responses(3).response_txn().succeeded());
  EXPECT_EQ(pt.responses(3).response_txn().responses(0).response_delete_range().deleted(), 2);
  EXPECT_EQ(from_pb(pt), t);

  mvcc::CompactionResponse c;
  c.header.revision = 13;
  pb::CompactionResponse pc;
  to_pb(c, &h, &pc);
  EXPECT_EQ(pc.header().revision(), 13);
  EXPECT_EQ(pc.header().member_id(), 222u);
  EXPECT_EQ(from_pb(pc).header.revision, 13);
}

// etcd 3.4's rpctypes: code and text of every KV error a client can see.
TEST(EtcdKvConvert, ErrorsGetEtcdsCodeAndText) {
  struct Case {
    Status in;
    grpc::StatusCode code;
    const char* text;
  };
  const Case cases[] = {
      {Status(StatusCode::kInvalid, mvcc::kErrCompacted), grpc::StatusCode::OUT_OF_RANGE,
       "etcdserver: mvcc: required revision has been compacted"},
      {Status(StatusCode::kInvalid, mvcc::kErrFutureRev), grpc::StatusCode::OUT_OF_RANGE,
       "etcdserver: mvcc: required revision is a future revision"},
      {Status(StatusCode::kNotFound, mvcc::kErrLeaseNotFound), grpc::StatusCode::NOT_FOUND,
       "etcdserver: requested lease not found"},
      {Status(StatusCode::kInvalid, mvcc::kErrEmptyKey), grpc::StatusCode::INVALID_ARGUMENT,
       "etcdserver: key is not provided"},
      {Status(StatusCode::kInvalid, mvcc::kErrKeyNotFound), grpc::StatusCode::INVALID_ARGUMENT,
       "etcdserver: key not found"},
      {Status(StatusCode::kInvalid, mvcc::kErrTooManyOps), grpc::StatusCode::INVALID_ARGUMENT,
       "etcdserver: too many operations in txn request"},
      {Status(StatusCode::kInvalid, mvcc::kErrDuplicateKey), grpc::StatusCode::INVALID_ARGUMENT,
       "etcdserver: duplicate key given in txn request"},
      {Status(StatusCode::kInvalid, mvcc::kErrValueProvided), grpc::StatusCode::INVALID_ARGUMENT,
       "etcdserver: value is provided"},
      {Status(StatusCode::kInvalid, mvcc::kErrLeaseProvided), grpc::StatusCode::INVALID_ARGUMENT,
       "etcdserver: lease is provided"},
      {Status(StatusCode::kInvalid, mvcc::kErrInvalidSortOption),
       grpc::StatusCode::INVALID_ARGUMENT, "etcdserver: invalid sort option"},
      {Status(StatusCode::kUnavailable, "no leader known; retry"), grpc::StatusCode::UNAVAILABLE,
       "etcdserver: no leader"},
      {Status(StatusCode::kNotLeader, "not the leader"), grpc::StatusCode::UNAVAILABLE,
       "etcdserver: leader changed"},
      {Status(StatusCode::kTimeout, "waited 5000 ms"), grpc::StatusCode::UNAVAILABLE,
       "etcdserver: request timed out"},
      {Status(StatusCode::kNoSpace, "ENOSPC in /data"), grpc::StatusCode::RESOURCE_EXHAUSTED,
       "etcdserver: mvcc: database space exceeded"},
      {Status(StatusCode::kTooLarge, "2 MiB"), grpc::StatusCode::INVALID_ARGUMENT,
       "etcdserver: request is too large"},
  };
  for (const Case& c : cases) {
    const grpc::Status g = to_grpc_status(c.in);
    EXPECT_EQ(g.error_code(), c.code) << c.in.to_string();
    EXPECT_EQ(g.error_message(), c.text) << c.in.to_string();
    // Relayed through a follower, the client sees exactly the same.
    const grpc::Status again = to_grpc_status(from_grpc_status(g));
    EXPECT_EQ(again.error_code(), c.code) << c.in.to_string();
    EXPECT_EQ(again.error_message(), c.text) << c.in.to_string();
  }
  EXPECT_TRUE(to_grpc_status(Status::ok()).ok());
  EXPECT_TRUE(from_grpc_status(grpc::Status::OK).is_ok());
  // The store's revision errors come back as the store words them.
  EXPECT_EQ(from_grpc_status(to_grpc_status(Status(StatusCode::kInvalid, mvcc::kErrCompacted)))
                .message(),
            mvcc::kErrCompacted);
}

TEST(EtcdKvConvert, AChannelFailureIsAnUnknownOutcome) {
  // What grpc++ reports when the leader cannot be reached or the connection drops.
  for (const grpc::Status& g :
       {grpc::Status(grpc::StatusCode::UNAVAILABLE, "failed to connect to all addresses"),
        grpc::Status(grpc::StatusCode::CANCELLED, "Cancelled"),
        grpc::Status(grpc::StatusCode::UNKNOWN, "Stream removed")}) {
    const Status s = from_grpc_status(g);
    EXPECT_EQ(s.code(), StatusCode::kTimeout) << g.error_message();
    EXPECT_EQ(to_grpc_status(s).error_message(),
              "etcdserver: request timed out, possibly due to connection lost");
    EXPECT_EQ(to_grpc_status(s).error_code(), grpc::StatusCode::UNAVAILABLE);
  }
  const Status late = from_grpc_status(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "x"));
  EXPECT_EQ(late.code(), StatusCode::kTimeout);
  EXPECT_EQ(to_grpc_status(late).error_message(), "etcdserver: request timed out");
  // An etcd text we have no entry for keeps its code and words.
  const grpc::Status other(grpc::StatusCode::UNAVAILABLE, "etcdserver: unhealthy cluster");
  EXPECT_EQ(to_grpc_status(from_grpc_status(other)).error_message(),
            "etcdserver: unhealthy cluster");
}

}  // namespace
}  // namespace ckv::etcd
