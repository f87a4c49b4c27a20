// HBONE end to end in memory: a client and a server HboneConnection with certificates from the
// real CA (keys and CSRs made as the node makes them), bytes moved between them by the test.
#include "hbone/hbone_connection.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "ca/certificate_authority.h"
#include "identity/workload_certificate.h"
#include "sluice/common/pki.h"

namespace sluice::ztunnel::hbone {
namespace {

namespace fs = std::filesystem;
using http2::SessionEvent;
using Kind = SessionEvent::Kind;

struct Credential {
  std::string keyPem, chainPem, rootPem;
};

class HboneConnectionTest : public ::testing::Test {
 protected:
  static Credential issue(const std::string& caDir, const std::string& identity) {
    auto ca = controller::CertificateAuthority::openOrCreate(caDir, "cluster.local");
    EXPECT_TRUE(ca);
    auto key = pki::generateP256Key();
    auto csr = pki::makeCsr(key->get(), identity);
    auto cert = (*ca)->sign(*csr, identity);
    EXPECT_TRUE(cert) << (cert ? "" : cert.error().message());
    return {pki::privateKeyPem(key->get()), cert->certificatePem, (*ca)->rootCertificatePem()};
  }
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/hbone_test_" + std::to_string(::getpid());
    fs::remove_all(dir_);
    client_ = issue(dir_ + "/ca", kClientId);
    server_ = issue(dir_ + "/ca", kServerId);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<HboneConnection> make(HboneConnection::Role role, const Credential& c) {
    auto ctx = makeTlsContext(role == HboneConnection::Role::kServer, c.keyPem, c.chainPem, c.rootPem);
    EXPECT_TRUE(ctx) << (ctx ? "" : ctx.error().message());
    contexts_.push_back(std::move(*ctx));
    auto conn = HboneConnection::create(role, contexts_.back().get());
    EXPECT_TRUE(conn);
    return std::move(*conn);
  }

  // Moves bytes both ways until neither side has anything to say; fails on an error.
  Status pump(HboneConnection& a, HboneConnection& b) {
    for (int round = 0; round < 100; ++round) {
      std::string ab, ba;
      SLUICE_TRY(a.flush(ab), "client flush");
      SLUICE_TRY(b.flush(ba), "server flush");
      if (ab.empty() && ba.empty()) return {};
      if (!ab.empty()) SLUICE_TRY(b.receive({reinterpret_cast<const uint8_t*>(ab.data()), ab.size()}), "server receive");
      if (!ba.empty()) SLUICE_TRY(a.receive({reinterpret_cast<const uint8_t*>(ba.data()), ba.size()}), "client receive");
      if (a.justEstablished()) a.peerVerified();
      if (b.justEstablished()) b.peerVerified();
    }
    return fail("no quiescence");
  }

  static bool has(const std::vector<SessionEvent>& events, Kind kind, int32_t stream) {
    for (const auto& e : events) {
      if (e.kind == kind && e.stream == stream) return true;
    }
    return false;
  }

  static constexpr const char* kClientId = "spiffe://cluster.local/ns/shop/sa/web";
  static constexpr const char* kServerId = "spiffe://cluster.local/ns/shop/sa/db";
  std::string dir_;
  Credential client_, server_;
  std::vector<SslCtxPtr> contexts_;
};

std::span<const uint8_t> bytes(const std::string& s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

TEST_F(HboneConnectionTest, ConnectRelaysBothWaysWithVerifiedIdentities) {
  auto client = make(HboneConnection::Role::kClient, client_);
  auto server = make(HboneConnection::Role::kServer, server_);
  auto stream = client->session().connect({"10.244.1.5:8080", "for=10.244.0.3", "00-abc-def-01"});
  ASSERT_TRUE(stream);
  ASSERT_TRUE(pump(*client, *server));
  EXPECT_EQ(client->peerIdentity(), kServerId);
  EXPECT_EQ(server->peerIdentity(), kClientId);
  auto events = server->session().takeEvents();
  ASSERT_EQ(events.size(), 1u);
  ASSERT_EQ(events[0].kind, Kind::kRequest);
  int32_t s = events[0].stream;
  EXPECT_EQ(server->session().status(s), 0);  // well formed
  EXPECT_EQ(server->session().request(s)->authority, "10.244.1.5:8080");
  EXPECT_EQ(server->session().request(s)->forwarded, "for=10.244.0.3");
  EXPECT_EQ(server->session().request(s)->traceparent, "00-abc-def-01");
  server->session().respond(s, 200);
  ASSERT_TRUE(pump(*client, *server));
  auto clientEvents = client->session().takeEvents();
  ASSERT_TRUE(has(clientEvents, Kind::kResponse, *stream));
  EXPECT_EQ(client->session().status(*stream), 200);

  // 1 MiB up (more than one frame, less than the window), a reply down, half-close both.
  std::string up(1 << 20, 'u');
  for (size_t i = 0; i < up.size(); ++i) up[i] = static_cast<char>('a' + i % 26);
  client->session().write(*stream, bytes(up));
  client->session().finish(*stream);
  ASSERT_TRUE(pump(*client, *server));
  events = server->session().takeEvents();
  EXPECT_TRUE(has(events, Kind::kData, s));
  EXPECT_TRUE(has(events, Kind::kEnd, s));
  std::string received;
  received.swap(server->session().inbox(s));
  EXPECT_EQ(received, up);
  server->session().consumed(s, received.size());
  server->session().write(s, bytes("pong"));
  server->session().finish(s);
  ASSERT_TRUE(pump(*client, *server));
  clientEvents = client->session().takeEvents();
  EXPECT_TRUE(has(clientEvents, Kind::kData, *stream));
  EXPECT_TRUE(has(clientEvents, Kind::kEnd, *stream));
  EXPECT_TRUE(has(clientEvents, Kind::kClosed, *stream));
  EXPECT_EQ(client->session().inbox(*stream), "pong");
  EXPECT_EQ(client->session().errorCode(*stream), 0u);
}

TEST_F(HboneConnectionTest, FlowControlHoldsUnconsumedBytesToTheWindow) {
  auto client = make(HboneConnection::Role::kClient, client_);
  auto server = make(HboneConnection::Role::kServer, server_);
  auto stream = client->session().connect({"10.244.1.5:8080", "", ""});
  ASSERT_TRUE(pump(*client, *server));
  int32_t s = server->session().takeEvents().at(0).stream;
  server->session().respond(s, 200);
  ASSERT_TRUE(pump(*client, *server));
  std::string big(6 << 20, 'x');  // more than the 4 MiB stream window
  client->session().write(*stream, bytes(big));
  ASSERT_TRUE(pump(*client, *server));
  EXPECT_EQ(server->session().inbox(s).size(), size_t{4 << 20});  // stops at the window
  EXPECT_EQ(client->session().queued(*stream), big.size() - (4 << 20));
  server->session().consumed(s, server->session().inbox(s).size());
  server->session().inbox(s).clear();
  ASSERT_TRUE(pump(*client, *server));
  EXPECT_EQ(server->session().inbox(s).size(), big.size() - (4 << 20));
  EXPECT_EQ(client->session().queued(*stream), 0u);
  EXPECT_TRUE(has(client->session().takeEvents(), Kind::kWritable, *stream));
}

// TLS reads the received bytes in place and keeps a partial record for the next call; HTTP/2
// DATA goes out without copies, in frames only up to the caller's budget. Ciphertext handed over
// in odd pieces (1 and 7 bytes, then 4093) and a 1 KiB budget per flush must still carry 1 MiB
// and its end exactly, from the handshake on.
TEST_F(HboneConnectionTest, CiphertextInOddPiecesAndSmallFlushBudgetsStillCarryEveryByte) {
  auto client = make(HboneConnection::Role::kClient, client_);
  auto server = make(HboneConnection::Role::kServer, server_);
  auto stream = client->session().connect({"10.244.1.5:8080", "", ""});
  ASSERT_TRUE(stream);
  std::string up(1 << 20, 'u');
  for (size_t i = 0; i < up.size(); ++i) up[i] = static_cast<char>('a' + (i * 7) % 26);
  int32_t s = 0;
  std::string received;
  bool ended = false, answered = false;
  const size_t pieces[] = {1, 7, 4093};
  for (int round = 0; round < 100000 && !ended; ++round) {
    std::string ab, ba;
    ASSERT_TRUE(client->flush(ab, 1024));
    ASSERT_TRUE(server->flush(ba, 1024));
    for (size_t at = 0, i = 0; at < ab.size(); ++i) {
      size_t n = std::min(pieces[i % 3], ab.size() - at);
      ASSERT_TRUE(server->receive({reinterpret_cast<const uint8_t*>(ab.data()) + at, n}));
      at += n;
    }
    for (size_t at = 0, i = 0; at < ba.size(); ++i) {
      size_t n = std::min(pieces[(i + 1) % 3], ba.size() - at);
      ASSERT_TRUE(client->receive({reinterpret_cast<const uint8_t*>(ba.data()) + at, n}));
      at += n;
    }
    if (client->justEstablished()) client->peerVerified();
    if (server->justEstablished()) server->peerVerified();
    for (const auto& e : server->session().takeEvents()) {
      if (e.kind == Kind::kRequest) {
        s = e.stream;
        server->session().respond(s, 200);
      }
      if (e.kind == Kind::kData) {
        std::string& inbox = server->session().inbox(s);
        received += inbox;
        server->session().consumed(s, inbox.size());
        inbox.clear();
      }
      if (e.kind == Kind::kEnd) ended = true;
    }
    for (const auto& e : client->session().takeEvents()) {
      if (e.kind == Kind::kResponse && !answered) {
        answered = true;
        client->session().write(*stream, bytes(up));
        client->session().finish(*stream);
      }
    }
  }
  EXPECT_TRUE(answered);
  EXPECT_TRUE(ended);
  EXPECT_EQ(received.size(), up.size());
  EXPECT_TRUE(received == up) << "the bytes differ";
}

TEST_F(HboneConnectionTest, ConnectWithoutAuthorityIsResetByTheProtocolLayer) {
  auto client = make(HboneConnection::Role::kClient, client_);
  auto server = make(HboneConnection::Role::kServer, server_);
  auto stream = client->session().connect({"", "", ""});
  ASSERT_TRUE(stream);
  ASSERT_TRUE(pump(*client, *server));
  for (const auto& e : server->session().takeEvents()) EXPECT_NE(e.kind, Kind::kRequest) << "a malformed CONNECT surfaced";
  EXPECT_TRUE(has(client->session().takeEvents(), Kind::kClosed, *stream));
  EXPECT_EQ(client->session().errorCode(*stream), 1u);  // PROTOCOL_ERROR
}

TEST_F(HboneConnectionTest, ClientFromAnotherCaFailsTheHandshake) {
  Credential stranger = issue(dir_ + "/other-ca", kClientId);
  auto client = make(HboneConnection::Role::kClient, {stranger.keyPem, stranger.chainPem, server_.rootPem});
  auto server = make(HboneConnection::Role::kServer, server_);
  ASSERT_TRUE(client->session().connect({"10.244.1.5:8080", "", ""}));
  auto pumped = pump(*client, *server);
  ASSERT_FALSE(pumped);
  EXPECT_NE(pumped.error().message().find("server receive"), std::string::npos) << pumped.error().message();
  EXPECT_FALSE(server->established());
}

TEST_F(HboneConnectionTest, ServerFromAnotherCaIsRejectedByTheClient) {
  Credential stranger = issue(dir_ + "/other-ca", kServerId);
  auto client = make(HboneConnection::Role::kClient, client_);
  auto server = make(HboneConnection::Role::kServer, {stranger.keyPem, stranger.chainPem, client_.rootPem});
  ASSERT_TRUE(client->session().connect({"10.244.1.5:8080", "", ""}));
  auto pumped = pump(*client, *server);
  ASSERT_FALSE(pumped);
  EXPECT_NE(pumped.error().message().find("client receive"), std::string::npos) << pumped.error().message();
}

}  // namespace
}  // namespace sluice::ztunnel::hbone
