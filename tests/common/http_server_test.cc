// The operator HTTP server with real sockets on loopback: what it answers to well-formed and
// hostile requests, and that stalled clients (more than any thread pool would have) do not
// block another one.
#include "sluice/common/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <map>

#include "sluice/common/unique_fd.h"

namespace sluice {
namespace {

UniqueFd connectTo(int port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  timeval limit{10, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  return fd;
}

// Sends `request` and reads the whole answer (the server closes after one response).
std::string roundTrip(int port, const std::string& request) {
  UniqueFd fd = connectTo(port);
  EXPECT_EQ(::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL), static_cast<ssize_t>(request.size()));
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd.get(), buf, sizeof(buf), 0)) > 0;) out.append(buf, static_cast<size_t>(n));
  return out;
}

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto listened = server_.listen("127.0.0.1:0", {{"/metrics", [] { return HttpResponse{200, "text/plain", "m 1\n"}; }},
                                                   {"/healthz/ready", [] { return HttpResponse{503, "text/plain", "no\n"}; }}});
    ASSERT_TRUE(listened) << listened.error().message();
    server_.start();
    port_ = server_.port(0);
    ASSERT_GT(port_, 0);
  }
  HttpServer server_;
  int port_ = 0;
};

struct Case {
  const char* request;
  const char* statusLine;
  const char* bodyFragment;  // "" when the answer must have no body
};

TEST_F(HttpServerTest, AnswersEachRequestAsExpected) {
  const Case cases[] = {
      {"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200", "m 1\n"},
      {"GET /metrics?name=x HTTP/1.0\r\n\r\n", "HTTP/1.1 200", "m 1\n"},
      {"GET /healthz/ready HTTP/1.1\r\n\r\n", "HTTP/1.1 503", "no\n"},
      {"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 405", "Method Not Allowed"},
      {"GET /quitquitquit HTTP/1.1\r\n\r\n", "HTTP/1.1 404", "this port serves: /healthz/ready /metrics"},
      {"GET /metrics/extra HTTP/1.1\r\n\r\n", "HTTP/1.1 404", "not found"},
  };
  for (const auto& c : cases) {
    std::string answer = roundTrip(port_, c.request);
    EXPECT_EQ(answer.rfind(c.statusLine, 0), 0u) << c.request << " -> " << answer;
    EXPECT_NE(answer.find(c.bodyFragment), std::string::npos) << c.request << " -> " << answer;
  }
  std::string head = roundTrip(port_, "HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(head.rfind("HTTP/1.1 200", 0), 0u) << head;
  EXPECT_EQ(head.find("m 1"), std::string::npos) << "HEAD answered with a body";
}

TEST_F(HttpServerTest, RefusesGarbageAndOversizedHeads) {
  EXPECT_EQ(roundTrip(port_, "garbage\r\n\r\n").find("HTTP/1.1 200"), std::string::npos);
  std::string huge = "GET /metrics HTTP/1.1\r\nX: " + std::string(64 * 1024, 'a') + "\r\n\r\n";
  EXPECT_EQ(roundTrip(port_, huge).find("HTTP/1.1 200"), std::string::npos);
}

TEST_F(HttpServerTest, StalledClientsDoNotBlockAnotherClient) {
  // Fifty clients open connections and send half a request head, then nothing.
  std::vector<UniqueFd> stalled;
  for (int i = 0; i < 50; ++i) {
    stalled.push_back(connectTo(port_));
    ASSERT_EQ(::send(stalled.back().get(), "GET /met", 8, MSG_NOSIGNAL), 8);
  }
  // Meanwhile another client is served in full...
  std::string answer = roundTrip(port_, "GET /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(answer.rfind("HTTP/1.1 200", 0), 0u) << answer;
  // ... while the stalled ones are still open (not yet timed out, nothing answered them).
  for (auto& fd : stalled) {
    char c;
    EXPECT_EQ(::recv(fd.get(), &c, 1, MSG_DONTWAIT), -1);
    EXPECT_EQ(errno, EAGAIN);
  }
}

// An upgrade's two tunnels: the successor binds the same port while the old one serves; once the
// old one stops, every request reaches the successor (its listening socket is closed, not just
// left unserved, which would strand connections in its backlog).
TEST(HttpServerSharing, ASuccessorBindsTheSamePortAndServesEverythingOnceTheOldOneStops) {
  HttpServer old(/*reusePort=*/true), successor(/*reusePort=*/true);
  auto route = [](const char* who) {
    return std::map<std::string, HttpHandler>{{"/who", [who] { return HttpResponse{200, "text/plain", who}; }}};
  };
  ASSERT_TRUE(old.listen("127.0.0.1:0", route("old")));
  int port = old.port(0);
  ASSERT_TRUE(successor.listen("127.0.0.1:" + std::to_string(port), route("new")));
  old.start();
  successor.start();
  old.stop();
  for (int i = 0; i < 20; ++i) {
    std::string answer = roundTrip(port, "GET /who HTTP/1.1\r\n\r\n");
    EXPECT_NE(answer.find("\r\n\r\nnew"), std::string::npos) << answer;
  }
  old.stop();  // idempotent

  HttpServer exclusive;  // without reusePort the port stays exclusive
  EXPECT_FALSE(exclusive.listen("127.0.0.1:" + std::to_string(port), route("third")));
}

}  // namespace
}  // namespace sluice
