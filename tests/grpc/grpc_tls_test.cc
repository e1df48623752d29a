// Tests for src/etcd/grpc_tls.h against a real grpc++ server on loopback: which member channels complete the TLS handshake.
#include "etcd/grpc_tls.h"

#include <chrono>
#include <memory>
#include <string>

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "support/test_certs.h"

namespace ckv::etcd {
namespace {

// A channel that has neither connected nor failed by then is a failure of
// the test, not of the handshake (loopback handshakes take milliseconds).
constexpr auto kConnectDeadline = std::chrono::seconds(10);

using tls::testing::Identity;
using tls::testing::make_identity;
using tls::testing::pem_of;

tls::TlsMaterial material(const Identity& member, const Identity* trusted_ca, bool verify_clients) {
  tls::TlsMaterial m;
  m.cert_chain_pem = pem_of(member.cert.get());
  m.private_key_pem = pem_of(member.key.get());
  if (trusted_ca != nullptr) m.trusted_ca_pem = pem_of(trusted_ca->cert.get());
  m.verify_clients = verify_clients;
  return m;
}

// Answers every call UNIMPLEMENTED: the tests only need the handshake.
class AnyMethod final : public grpc::CallbackGenericService {
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext*) override {
    class Reactor final : public grpc::ServerGenericBidiReactor {
     public:
      Reactor() { Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "test")); }
      void OnDone() override { delete this; }
    };
    return new Reactor();
  }
};

class GrpcTlsTest : public ::testing::Test {
 protected:
  GrpcTlsTest()
      : ca_(make_identity("test CA", nullptr, true)),
        member_(make_identity("member", &ca_, false)),
        other_ca_(make_identity("other CA", nullptr, true)),
        stranger_(make_identity("stranger", &other_ca_, false)) {}

  void serve(const std::optional<tls::TlsMaterial>& tls) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", server_credentials(tls), &port_);
    builder.RegisterCallbackGenericService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_TRUE(server_ != nullptr);
    ASSERT_NE(port_, 0);
  }
  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now());
  }

  // Whether a channel with these credentials reaches READY (the TLS
  // handshake succeeded) rather than TRANSIENT_FAILURE.
  bool connects(const std::optional<tls::TlsMaterial>& client) {
    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                                       member_channel_credentials(client));
    const auto deadline = std::chrono::system_clock::now() + kConnectDeadline;
    grpc_connectivity_state state = channel->GetState(true);
    while (state != GRPC_CHANNEL_READY && state != GRPC_CHANNEL_TRANSIENT_FAILURE) {
      EXPECT_TRUE(channel->WaitForStateChange(state, deadline)) << "no outcome within the deadline";
      if (std::chrono::system_clock::now() >= deadline) return false;
      state = channel->GetState(true);
    }
    if (state != GRPC_CHANNEL_READY) return false;
    // Connected: a call goes through the TLS channel and gets the server's answer.
    grpc::GenericStub stub(channel);
    grpc::ClientContext ctx;
    grpc::CompletionQueue cq;
    auto call = stub.PrepareUnaryCall(&ctx, "/test.Any/Call", grpc::ByteBuffer(), &cq);
    call->StartCall();
    grpc::ByteBuffer reply;
    grpc::Status status;
    call->Finish(&reply, &status, reinterpret_cast<void*>(1));
    void* tag = nullptr;
    bool ok = false;
    EXPECT_TRUE(cq.Next(&tag, &ok));
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED) << status.error_message();
    cq.Shutdown();
    while (cq.Next(&tag, &ok)) {
    }
    return true;
  }

  Identity ca_, member_, other_ca_, stranger_;
  AnyMethod service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TEST_F(GrpcTlsTest, WithoutTlsBothSidesArePlaintext) {
  serve(std::nullopt);
  EXPECT_TRUE(connects(std::nullopt));
}

TEST_F(GrpcTlsTest, AMemberVerifiesTheServerAgainstTheTrustedCa) {
  serve(material(member_, nullptr, false));
  EXPECT_TRUE(connects(material(member_, &ca_, false)));
  // A CA that did not sign the server's certificate: refused.
  EXPECT_FALSE(connects(material(stranger_, &other_ca_, false)));
  // A plaintext member cannot talk to a TLS one.
  EXPECT_FALSE(connects(std::nullopt));
}

TEST_F(GrpcTlsTest, WithClientVerificationAMemberPresentsItsOwnCertificate) {
  serve(material(member_, &ca_, true));
  EXPECT_TRUE(connects(material(member_, &ca_, false)));
  // It trusts the server, but its own certificate is from another CA.
  tls::TlsMaterial stranger = material(stranger_, &ca_, false);
  EXPECT_FALSE(connects(stranger));
}

}  // namespace
}  // namespace ckv::etcd
