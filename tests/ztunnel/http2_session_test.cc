// Http2Session for ordinary requests (the L7 proxy's HTTP/2 and gRPC), client and server in
// memory: header blocks with their fields, bodies, trailers both ways, interim responses and
// trailers-only answers (gRPC errors are sent so).
#include "http2/http2_session.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace sluice::ztunnel::http2 {
namespace {

using Kind = SessionEvent::Kind;

std::span<const uint8_t> bytes(const std::string& s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

const std::string* field(const Fields& fields, std::string_view name) {
  for (const auto& f : fields) {
    if (f.name == name) return &f.value;
  }
  return nullptr;
}

class Http2SessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = Http2Session::create(Http2Session::Role::kClient);
    auto s = Http2Session::create(Http2Session::Role::kServer);
    ASSERT_TRUE(c && s);
    client = std::move(*c);
    server = std::move(*s);
  }

  // Moves bytes both ways until neither side has anything to send; collects the events.
  void exchange() {
    for (int round = 0; round < 16; ++round) {
      std::string toServer, toClient;
      ASSERT_TRUE(client->produce(toServer));
      ASSERT_TRUE(server->produce(toClient));
      ASSERT_TRUE(server->receive(bytes(toServer)));
      ASSERT_TRUE(client->receive(bytes(toClient)));
      // Producing can raise events too (a stream nghttp2 refuses to send).
      for (auto e : server->takeEvents()) serverEvents.push_back(e);
      for (auto e : client->takeEvents()) clientEvents.push_back(e);
      if (toServer.empty() && toClient.empty()) return;
    }
    FAIL() << "the sessions kept talking";
  }

  static bool has(const std::vector<SessionEvent>& events, Kind kind, int32_t stream) {
    return std::any_of(events.begin(), events.end(), [&](const SessionEvent& e) { return e.kind == kind && e.stream == stream; });
  }

  std::unique_ptr<Http2Session> client, server;
  std::vector<SessionEvent> clientEvents, serverEvents;
};

TEST_F(Http2SessionTest, RequestAndResponseCarryFieldsBodiesAndTrailersBothWays) {
  auto id = client->submitRequest({{":method", "POST"}, {":scheme", "http"}, {":authority", "echo.default:8080"},
                                   {":path", "/echo.Echo/Say"}, {"content-type", "application/grpc"}, {"te", "trailers"}},
                                  false);
  ASSERT_TRUE(id) << id.error().message();
  const std::string body("\0\0\0\0\5hello", 10);  // a gRPC message frame: flag, length, bytes
  client->write(*id, bytes(body));
  client->finish(*id, {{"x-request-trailer", "1"}});
  exchange();

  ASSERT_TRUE(has(serverEvents, Kind::kRequest, *id));
  ASSERT_TRUE(has(serverEvents, Kind::kEnd, *id));
  const Fields& request = server->fields(*id);
  ASSERT_GE(request.size(), 6u);
  EXPECT_EQ(request[0].name, ":method");
  EXPECT_EQ(request[0].value, "POST");
  ASSERT_NE(field(request, ":path"), nullptr);
  EXPECT_EQ(*field(request, ":path"), "/echo.Echo/Say");
  EXPECT_EQ(*field(request, "te"), "trailers");
  EXPECT_EQ(server->inbox(*id), body);
  ASSERT_NE(field(server->trailers(*id), "x-request-trailer"), nullptr);
  EXPECT_EQ(field(request, "x-request-trailer"), nullptr);  // trailers stay apart from the head
  EXPECT_TRUE(server->peerEnded(*id));

  server->submitResponse(*id, {{":status", "200"}, {"content-type", "application/grpc"}}, false);
  server->write(*id, bytes(body));
  server->finish(*id, {{"grpc-status", "0"}, {"grpc-message", "ok"}});
  exchange();
  ASSERT_TRUE(has(clientEvents, Kind::kResponse, *id));
  ASSERT_TRUE(has(clientEvents, Kind::kEnd, *id));
  EXPECT_EQ(client->status(*id), 200);
  EXPECT_EQ(*field(client->fields(*id), "content-type"), "application/grpc");
  EXPECT_EQ(client->inbox(*id), body);
  ASSERT_NE(field(client->trailers(*id), "grpc-status"), nullptr);
  EXPECT_EQ(*field(client->trailers(*id), "grpc-status"), "0");
  EXPECT_EQ(field(client->fields(*id), "grpc-status"), nullptr);
}

TEST_F(Http2SessionTest, InterimResponsesAreSkippedAndTheFinalHeadIsTheOneKept) {
  auto id = client->submitRequest({{":method", "PUT"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/"},
                                   {"expect", "100-continue"}},
                                  false);
  ASSERT_TRUE(id);
  exchange();
  ASSERT_TRUE(has(serverEvents, Kind::kRequest, *id));
  server->submitResponse(*id, {{":status", "100"}}, false);
  exchange();
  EXPECT_FALSE(has(clientEvents, Kind::kResponse, *id));
  client->finish(*id);
  exchange();
  server->submitResponse(*id, {{":status", "201"}, {"location", "/x"}}, true);
  exchange();
  ASSERT_TRUE(has(clientEvents, Kind::kResponse, *id));
  EXPECT_EQ(client->status(*id), 201);
  EXPECT_EQ(*field(client->fields(*id), "location"), "/x");
}

TEST_F(Http2SessionTest, TrailersOnlyAnswerEndsTheStreamWithItsHead) {
  auto id = client->submitRequest({{":method", "POST"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/s/M"}}, true);
  ASSERT_TRUE(id);
  exchange();
  ASSERT_TRUE(server->peerEnded(*id));
  server->submitResponse(*id, {{":status", "200"}, {"content-type", "application/grpc"}, {"grpc-status", "14"}}, true);
  exchange();
  ASSERT_TRUE(has(clientEvents, Kind::kResponse, *id));
  ASSERT_TRUE(has(clientEvents, Kind::kEnd, *id));
  EXPECT_TRUE(client->peerEnded(*id));
  EXPECT_EQ(*field(client->fields(*id), "grpc-status"), "14");
  EXPECT_TRUE(client->trailers(*id).empty());
}

// A tunnel upgrade's GOAWAY shutdown notice (ztunnel/proxy/hbone_server.h): streams the client
// already sent are served, no new one is taken, and a stream the client had queued but not sent
// when the notice arrived is refused locally with REFUSED_STREAM (never processed: StreamEndpoint
// opens it again on another connection).
TEST_F(Http2SessionTest, AfterAShutdownNoticeSentStreamsAreServedAndUnsentOnesRefused) {
  Fields head{{":method", "GET"}, {":scheme", "http"}, {":authority", "a:80"}, {":path", "/"}};
  auto sent = client->submitRequest(head, true);
  ASSERT_TRUE(sent);
  exchange();
  ASSERT_TRUE(has(serverEvents, Kind::kRequest, *sent));

  server->shutdownNotice();
  std::string notice;
  ASSERT_TRUE(server->produce(notice));
  auto queued = client->submitRequest(head, true);  // submitted, not yet on the wire
  ASSERT_TRUE(queued);
  ASSERT_TRUE(client->receive(bytes(notice)));
  EXPECT_FALSE(client->acceptsStreams()) << "a client must open no stream after a GOAWAY";
  exchange();
  EXPECT_TRUE(has(clientEvents, Kind::kClosed, *queued));
  EXPECT_EQ(client->errorCode(*queued), 0x7u) << "not REFUSED_STREAM";
  EXPECT_FALSE(has(serverEvents, Kind::kRequest, *queued));

  // The stream sent before the notice is still answered.
  server->respond(*sent, 200);
  exchange();
  EXPECT_TRUE(has(clientEvents, Kind::kResponse, *sent));
  EXPECT_EQ(client->status(*sent), 200);
}

// Lent bytes (the HBONE relay's receive buffers, StreamEndpoint::write) go out after what write()
// queued, in order, only as the peer's window allows, and the lender hears (kWritable) once
// every lent byte is framed; until then it must keep them.
TEST(Http2SessionLoan, LentBytesFollowQueuedOnesWithinTheWindowAndTheLenderIsToldWhenAllAreFramed) {
  auto client = Http2Session::create(Http2Session::Role::kClient);
  auto server = Http2Session::create(Http2Session::Role::kServer, {.streamWindow = 16 << 10, .connectionWindow = 1 << 20});
  ASSERT_TRUE(client && server);
  auto id = (*client)->submitRequest({{":method", "POST"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/"}}, false);
  ASSERT_TRUE(id);
  // SETTINGS both ways first: the client learns the 16 KiB window before it sends DATA.
  for (int round = 0; round < 2; ++round) {
    std::string toServer, toClient;
    ASSERT_TRUE((*client)->produce(toServer));
    ASSERT_TRUE((*server)->receive(bytes(toServer)));
    ASSERT_TRUE((*server)->produce(toClient));
    ASSERT_TRUE((*client)->receive(bytes(toClient)));
  }
  std::string lent(40 << 10, '\0');
  for (size_t i = 0; i < lent.size(); ++i) lent[i] = static_cast<char>('a' + i % 23);
  (*client)->write(*id, bytes("head:"));
  (*client)->lend(*id, bytes(lent));
  EXPECT_EQ((*client)->queued(*id), 5 + lent.size());

  std::string received;
  bool told = false;
  for (int round = 0; round < 64 && received.size() < 5 + lent.size(); ++round) {
    std::string toServer, toClient;
    ASSERT_TRUE((*client)->produce(toServer));
    for (auto e : (*client)->takeEvents()) told |= e.kind == Kind::kWritable && e.stream == *id;
    // Told exactly when the last lent byte is framed, not before.
    EXPECT_EQ(told, (*client)->lentTaken(*id) == lent.size());
    ASSERT_TRUE((*server)->receive(bytes(toServer)));
    std::string& inbox = (*server)->inbox(*id);
    // Never more in flight than the stream's window: the rest waits in the loan.
    EXPECT_LE(inbox.size(), size_t{16 << 10});
    received += inbox;
    (*server)->consumed(*id, inbox.size());
    inbox.clear();
    (void)(*server)->takeEvents();
    ASSERT_TRUE((*server)->produce(toClient));  // WINDOW_UPDATE
    ASSERT_TRUE((*client)->receive(bytes(toClient)));
  }
  EXPECT_TRUE(told);
  EXPECT_EQ(received, "head:" + lent);
  EXPECT_EQ((*client)->endLoan(*id), lent.size());
  EXPECT_EQ((*client)->queued(*id), 0u);
}

// A loan given up (the relay aborts: RST_STREAM) or a stream released is never read again: the
// bytes are freed and the session still produces (ASan would see a read of freed memory).
TEST(Http2SessionLoan, AnEndedLoanIsNeverReadAgain) {
  for (bool release : {false, true}) {
    auto client = Http2Session::create(Http2Session::Role::kClient);
    auto server = Http2Session::create(Http2Session::Role::kServer);
    ASSERT_TRUE(client && server);
    auto id = (*client)->submitRequest({{":method", "POST"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/"}}, false);
    ASSERT_TRUE(id);
    auto lent = std::make_unique<std::string>(8 << 10, 'x');
    (*client)->lend(*id, bytes(*lent));
    if (release) {
      (*client)->release(*id);
    } else {
      EXPECT_EQ((*client)->endLoan(*id), 0u);
      (*client)->reset(*id);
    }
    lent.reset();
    std::string toServer;
    ASSERT_TRUE((*client)->produce(toServer));
    ASSERT_TRUE((*server)->receive(bytes(toServer)));
    EXPECT_TRUE((*server)->inbox(*id).empty()) << (release ? "released" : "reset");
    EXPECT_EQ((*client)->queued(*id), 0u);
  }
}

}  // namespace
}  // namespace sluice::ztunnel::http2
