// The discovery stream's bounds (controller/discovery/discovery_server.h), against the real
// server in process over gRPC: a subscriber that never subscribes, or never acknowledges,
// loses its stream at the deadline; streams beyond the maximum are refused; a subscriber that
// acknowledged keeps its stream however long nothing changes; and the pure deadline check.
#include "discovery/discovery_server.h"

#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <memory>

namespace sluice::controller {
namespace {

using namespace std::chrono_literals;
namespace d1 = discovery::v1;

TEST(DiscoveryBounds, PeerOverdueTable) {
  auto t0 = std::chrono::steady_clock::time_point{} + 100s;
  EXPECT_FALSE(peerOverdue(std::nullopt, 1s, t0 + 10h)) << "not waiting on the peer";
  EXPECT_FALSE(peerOverdue(t0, 1s, t0 + 999ms));
  EXPECT_TRUE(peerOverdue(t0, 1s, t0 + 1s));
  EXPECT_TRUE(peerOverdue(t0, 1s, t0 + 5s));
}

class DiscoveryServerTest : public ::testing::Test {
 protected:
  void start(DiscoveryLimits limits) {
    server_ = std::make_unique<DiscoveryServer>(store_, "cluster.local", limits);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(server_.get());
    grpc_ = builder.BuildAndStart();
    ASSERT_TRUE(grpc_ != nullptr && port > 0);
    stub_ = d1::Discovery::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    if (grpc_) grpc_->Shutdown(std::chrono::system_clock::now() + 2s);
  }
  struct Subscriber {
    std::unique_ptr<grpc::ClientContext> context = std::make_unique<grpc::ClientContext>();
    std::unique_ptr<grpc::ClientReaderWriter<d1::DiscoveryRequest, d1::DiscoveryResponse>> stream;
  };
  Subscriber open() {
    Subscriber s;
    s.context->set_deadline(std::chrono::system_clock::now() + 20s);
    s.stream = stub_->Stream(s.context.get());
    return s;
  }
  static bool subscribe(Subscriber& s, const std::string& node) {
    d1::DiscoveryRequest hello;
    hello.set_node(node);
    return s.stream->Write(hello);
  }
  // A stream that subscribed as `node` and read its first response (into `first`).
  Subscriber subscribed(const std::string& node, d1::DiscoveryResponse* first) {
    Subscriber s = open();
    EXPECT_TRUE(subscribe(s, node)) << node;
    EXPECT_TRUE(s.stream->Read(first)) << node << " got no first response";
    return s;
  }

  ConfigStore store_;
  std::unique_ptr<DiscoveryServer> server_;
  std::unique_ptr<grpc::Server> grpc_;
  std::unique_ptr<d1::Discovery::Stub> stub_;
};

TEST_F(DiscoveryServerTest, ASubscriberThatNeverSubscribesIsCutAtTheDeadline) {
  ASSERT_NO_FATAL_FAILURE(start({.maxStreams = 8, .ackDeadline = 300ms}));
  Subscriber silent = open();
  auto began = std::chrono::steady_clock::now();
  d1::DiscoveryResponse response;
  EXPECT_FALSE(silent.stream->Read(&response)) << "the server sent something to a stream that never subscribed";
  grpc::Status status = silent.stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED) << status.error_message();
  EXPECT_LT(std::chrono::steady_clock::now() - began, 5s) << "held far past the 300 ms deadline";
}

TEST_F(DiscoveryServerTest, ASubscriberThatNeverAcknowledgesIsCutButOneThatDoesStays) {
  ASSERT_NO_FATAL_FAILURE(start({.maxStreams = 8, .ackDeadline = 300ms}));
  d1::DiscoveryResponse first, muteFirst;
  Subscriber polite = subscribed("node-polite", &first);
  // The mute one reads its first response and never acknowledges it: cut.
  Subscriber mute = subscribed("node-mute", &muteFirst);
  d1::DiscoveryRequest ack;
  ack.set_node("node-polite");
  ack.set_response_nonce(first.nonce());
  ASSERT_TRUE(polite.stream->Write(ack));
  d1::DiscoveryResponse more;
  EXPECT_FALSE(mute.stream->Read(&more));
  EXPECT_EQ(mute.stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  // The polite one, idle (nothing changes) for 4 deadlines, still holds its stream.
  std::this_thread::sleep_for(1200ms);
  bool politeConnected = false;
  for (const auto& n : server_->nodes()) politeConnected = politeConnected || (n.node == "node-polite" && n.connected && n.acks == 1);
  EXPECT_TRUE(politeConnected) << "an acknowledged, idle subscriber lost its stream";
  polite.context->TryCancel();
}

TEST_F(DiscoveryServerTest, StreamsBeyondTheMaximumAreRefused) {
  ASSERT_NO_FATAL_FAILURE(start({.maxStreams = 2, .ackDeadline = 10s}));
  d1::DiscoveryResponse r;
  Subscriber a = subscribed("node-a", &r), b = subscribed("node-b", &r);
  Subscriber c = open();
  (void)subscribe(c, "node-c");
  EXPECT_FALSE(c.stream->Read(&r));
  grpc::Status refused = c.stream->Finish();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(refused.error_message().find("at most 2 discovery streams"), std::string::npos) << refused.error_message();
  a.context->TryCancel();
  b.context->TryCancel();
}

}  // namespace
}  // namespace sluice::controller
