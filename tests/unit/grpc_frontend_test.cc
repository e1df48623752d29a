// etcd's gRPC port served by our own HTTP/2 front end (etcd/grpc_frontend.h), driven by grpc++'s client: KV answered, the rest relayed, bad input refused.
#include "etcd/grpc_frontend.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>

#include <grpcpp/generic/generic_stub.h>

#include "etcd/kv_grpc_service.h"
#include "recipe_grpc_fixture.h"

namespace ckv::etcd {
namespace {

namespace pb = etcdserverpb;
using namespace std::chrono_literals;

class GrpcFrontendTest : public RecipeGrpcTest {
 protected:
  void SetUp() override {
    front_end_ = GrpcFrontEnd::kOwn;
    RecipeGrpcTest::SetUp();
  }

  grpc::Status put(const std::string& key, const std::string& value, pb::PutResponse* resp = nullptr) {
    auto stub = pb::KV::NewStub(channel_);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    pb::PutRequest req;
    req.set_key(key);
    req.set_value(value);
    pb::PutResponse ignored;
    return stub->Put(&ctx, req, resp != nullptr ? resp : &ignored);
  }
};

TEST_F(GrpcFrontendTest, KvCallsAreAnsweredWithEtcdsMessages) {
  pb::PutResponse put_resp;
  ASSERT_TRUE(put("k", "v1", &put_resp).ok());
  EXPECT_GT(put_resp.header().revision(), 0);
  auto stub = pb::KV::NewStub(channel_);
  grpc::ClientContext ctx;
  pb::RangeRequest req;
  req.set_key("k");
  pb::RangeResponse resp;
  ASSERT_TRUE(stub->Range(&ctx, req, &resp).ok());
  ASSERT_EQ(resp.kvs_size(), 1);
  EXPECT_EQ(resp.kvs(0).value(), "v1");
  EXPECT_EQ(resp.header().revision(), put_resp.header().revision());
  // An error keeps etcd's code and text.
  grpc::ClientContext bad;
  pb::RangeRequest future;
  future.set_key("k");
  future.set_revision(put_resp.header().revision() + 100);
  const grpc::Status s = stub->Range(&bad, future, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_EQ(s.error_message(), "etcdserver: mvcc: required revision is a future revision");
}

TEST_F(GrpcFrontendTest, OtherServicesAreRelayedStreamsIncluded) {
  const int64_t lease = grant(0);  // a unary call relayed to grpc++'s Lease service
  ASSERT_NE(lease, 0);
  auto lease_stub = pb::Lease::NewStub(channel_);
  {
    grpc::ClientContext ctx;
    auto stream = lease_stub->LeaseKeepAlive(&ctx);
    for (int i = 0; i < 3; ++i) {
      pb::LeaseKeepAliveRequest req;
      req.set_id(lease);
      ASSERT_TRUE(stream->Write(req));
      pb::LeaseKeepAliveResponse resp;
      ASSERT_TRUE(stream->Read(&resp));
      EXPECT_EQ(resp.id(), lease);
      EXPECT_GT(resp.ttl(), 0);
    }
    stream->WritesDone();
    pb::LeaseKeepAliveResponse extra;
    EXPECT_FALSE(stream->Read(&extra));
    EXPECT_TRUE(stream->Finish().ok());
  }
  // A watch sees a put made after it was created, then the client cancels it.
  auto watch_stub = pb::Watch::NewStub(channel_);
  grpc::ClientContext ctx;
  auto stream = watch_stub->Watch(&ctx);
  pb::WatchRequest create;
  create.mutable_create_request()->set_key("w");
  ASSERT_TRUE(stream->Write(create));
  pb::WatchResponse created;
  ASSERT_TRUE(stream->Read(&created));
  EXPECT_TRUE(created.created());
  ASSERT_TRUE(put("w", "event").ok());
  pb::WatchResponse event;
  ASSERT_TRUE(stream->Read(&event));
  ASSERT_EQ(event.events_size(), 1);
  EXPECT_EQ(event.events(0).kv().value(), "event");
  ctx.TryCancel();
  while (stream->Read(&event)) {
  }
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

TEST_F(GrpcFrontendTest, AnUnknownMethodIsRelayedAndNamedUnimplemented) {
  grpc::GenericStub stub(channel_);
  grpc::ClientContext ctx;
  grpc::Slice nothing("");
  grpc::ByteBuffer empty(&nothing, 1);
  grpc::ByteBuffer out;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, "/no.Such/Method", grpc::StubOptions(), &empty, &out,
                 [&done](grpc::Status s) { done.set_value(std::move(s)); });
  const grpc::Status s = done.get_future().get();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(s.error_message(), "consensuskv: unknown method /no.Such/Method");
}

TEST_F(GrpcFrontendTest, AnOversizedRequestIsRefusedAndTheNodeServesOn) {
  const grpc::Status s = put("big", std::string(kMaxGrpcRequestBytes + 1, 'x'));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(s.error_message().find("grpc: received message larger than max"), std::string::npos)
      << s.error_message();
  // Over etcd's 1.5 MiB request limit but within the framing limit: etcd's own error.
  const grpc::Status t = put("big", std::string(kMaxRequestBytes + 1, 'x'));
  EXPECT_EQ(t.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(t.error_message(), "etcdserver: request is too large");
  EXPECT_TRUE(put("small", "ok").ok());
}

TEST_F(GrpcFrontendTest, AGzipCompressedCallIsInflatedAndAnswered) {
  grpc::ChannelArguments args;
  args.SetCompressionAlgorithm(GRPC_COMPRESS_GZIP);
  auto gz = grpc::CreateCustomChannel(address_, grpc::InsecureChannelCredentials(), args);
  auto stub = pb::KV::NewStub(gz);
  grpc::ClientContext ctx;
  pb::PutRequest req;
  req.set_key("gz");
  req.set_value(std::string(10'000, 'z'));  // compresses well, so grpc++ does compress it
  pb::PutResponse resp;
  const grpc::Status s = stub->Put(&ctx, req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
  EXPECT_TRUE(exists("gz"));
}

// Bytes that are not HTTP/2 close their own connection only.
TEST_F(GrpcFrontendTest, GarbageOnAConnectionClosesItAndTheServerServesOn) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(server_->port());
  ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string junk = "GET / HTTP/1.1\r\nHost: x\r\n\r\n" + std::string(1000, '\xff');
  ASSERT_EQ(::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL), static_cast<ssize_t>(junk.size()));
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[4096];
  ssize_t n = 0;
  const auto start = std::chrono::steady_clock::now();
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) {
  }
  EXPECT_EQ(n, 0) << "the server should close the connection (errno " << errno << ")";
  EXPECT_LT(std::chrono::steady_clock::now() - start, 4s);
  ::close(fd);
  EXPECT_TRUE(put("after", "junk").ok());
}

// stop() does not wait for open streams to end by themselves: it cancels them.
TEST_F(GrpcFrontendTest, StopEndsAnOpenWatchStream) {
  auto watch_stub = pb::Watch::NewStub(channel_);
  grpc::ClientContext ctx;
  auto stream = watch_stub->Watch(&ctx);
  pb::WatchRequest create;
  create.mutable_create_request()->set_key("w");
  ASSERT_TRUE(stream->Write(create));
  pb::WatchResponse created;
  ASSERT_TRUE(stream->Read(&created));
  const auto start = std::chrono::steady_clock::now();
  server_->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(kGrpcShutdownGraceMs + 1000));
  pb::WatchResponse more;
  while (stream->Read(&more)) {
  }
  EXPECT_FALSE(stream->Finish().ok());
}

}  // namespace
}  // namespace ckv::etcd
