// HTTP/1.1 framing as the tunnel forwards it: heads parsed, bodies reported as raw bytes, and
// every request-smuggling shape RFC 9112 names refused.
#include "l7/http1_parser.h"

#include <gtest/gtest.h>

#include <string>

namespace sluice::ztunnel::l7 {
namespace {

using Event = Http1Parser::Step::Event;
using namespace std::string_literals;

std::span<const uint8_t> bytes(std::string_view s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

// Feeds `input` in pieces of `piece` bytes; collects the heads, raw bodies and the first error.
struct Parsed {
  std::vector<HttpHead> heads;
  std::vector<std::string> bodies;
  int errorStatus = 0;
  std::string error;
  bool midMessage = false;
};

Parsed parse(Http1Parser::Kind kind, std::string_view input, size_t piece = SIZE_MAX, bool eof = false) {
  Http1Parser parser(kind);
  Parsed out;
  std::string body;
  auto handle = [&](const Http1Parser::Step& step) {
    body.append(reinterpret_cast<const char*>(step.body.data()), step.body.size());
    if (step.event == Event::kHead) out.heads.push_back(parser.head());
    if (step.event == Event::kEnd) {
      out.bodies.push_back(std::exchange(body, {}));
      parser.next();
    }
    if (step.event == Event::kError) {
      out.errorStatus = step.status;
      out.error = step.error;
      return false;
    }
    return true;
  };
  for (size_t at = 0; at < input.size() || at == 0;) {
    std::string_view part = input.substr(at, std::min(piece, input.size() - at));
    at += part.size();
    auto rest = bytes(part);
    while (true) {
      auto step = parser.feed(rest);
      if (!handle(step)) return out;
      rest = rest.subspan(step.consumed);
      if (step.event == Event::kNeedMore) break;
    }
    if (input.empty()) break;
  }
  if (eof && !handle(parser.finish())) return out;
  out.midMessage = parser.inMessage();
  return out;
}

TEST(Http1Parser, PipelinedRequestsAreFramedOneByOne) {
  for (size_t piece : {size_t{1}, size_t{7}, SIZE_MAX}) {
    Parsed p = parse(Http1Parser::Kind::kRequest,
                     "GET /a?x=1 HTTP/1.1\r\nHost: web\r\nX-Canary: always\r\n\r\n"
                     "POST /b HTTP/1.1\r\nHost: web\r\nContent-Length: 3\r\n\r\nabc"
                     "PUT /c HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\nX-Trailer: t\r\n\r\n",
                     piece);
    ASSERT_EQ(p.errorStatus, 0) << p.error << " piece " << piece;
    ASSERT_EQ(p.heads.size(), 3u) << "piece " << piece;
    EXPECT_EQ(p.heads[0].method, "GET");
    EXPECT_EQ(p.heads[0].path(), "/a");
    EXPECT_EQ(p.heads[0].query(), "x=1");
    EXPECT_EQ(p.heads[0].authority(), "web");
    ASSERT_NE(p.heads[0].find("x-canary"), nullptr);
    EXPECT_EQ(*p.heads[0].find("x-canary"), "always");
    EXPECT_EQ(p.bodies, (std::vector<std::string>{"", "abc", "3\r\nxyz\r\n0\r\nX-Trailer: t\r\n\r\n"})) << piece;
    EXPECT_EQ(p.heads[2].headers.size(), 2u) << "a trailer is body, not head";
    EXPECT_FALSE(p.midMessage);
  }
}

TEST(Http1Parser, HeadSerializesBackToTheWire) {
  Parsed p = parse(Http1Parser::Kind::kRequest, "GET /x HTTP/1.1\r\nHost: web\r\nAccept:  */* \r\n\r\n");
  ASSERT_EQ(p.heads.size(), 1u);
  EXPECT_EQ(p.heads[0].serializeRequest(), "GET /x HTTP/1.1\r\nHost: web\r\nAccept: */*\r\n\r\n");
}

struct Refusal {
  const char* name;
  std::string input;
  int status;
};

TEST(Http1Parser, SmugglingShapesAndOversizedHeadsAreRefused) {
  std::string manyHeaders = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 100; ++i) manyHeaders += "X-" + std::to_string(i) + ": v\r\n";
  const Refusal cases[] = {
      {"CL and TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
      {"two CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400},
      {"TE not chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nabc", 400},
      {"chunked not last", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400},
      {"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400},
      {"bare CR", "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400},
      {"bare LF", "GET / HTTP/1.1\nHost: a\n\n", 400},
      {"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
      {"NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"s, 400},
      {"bad chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
      {"101 headers", manyHeaders + "\r\n", 431},
      {"61 KiB head", "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(61 * 1024, 'a') + "\r\n\r\n", 431},
      {"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505},
      // Found by fuzz_http1_request: llhttp reads a line without a version as HTTP/0.9 and
      // goes on to parse fields; "PRI /x HTTP/0.9" forwarded would be read as the h2 preface.
      {"HTTP/0.9 line then fields", "PRI /1.1\r\nHost: web\r\n\r\n", 505},
      {"HTTP/0.9 GET", "GET /\r\n\r\n", 505},
      {"TE twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
      {"TE identity, chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n", 400},
      {"HTTP/2.0 request line", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
  };
  for (const auto& c : cases) {
    for (size_t piece : {size_t{1}, size_t{5}, SIZE_MAX}) {
      Parsed p = parse(Http1Parser::Kind::kRequest, c.input, piece);
      EXPECT_EQ(p.errorStatus, c.status) << c.name << " piece " << piece << ": " << p.error;
    }
  }
}

TEST(Http1Parser, ResponsesEndByLengthByStatusOrByClose) {
  Parsed p = parse(Http1Parser::Kind::kResponse,
                   "HTTP/1.1 100 Continue\r\n\r\n"
                   "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                   "HTTP/1.1 204 No Content\r\n\r\n"
                   "HTTP/1.1 200 OK\r\n\r\nuntil close",
                   3, /*eof=*/true);
  ASSERT_EQ(p.errorStatus, 0) << p.error;
  ASSERT_EQ(p.heads.size(), 4u);
  EXPECT_EQ(p.heads[0].status, 100);
  EXPECT_EQ(p.heads[1].status, 200);
  EXPECT_EQ(p.heads[2].status, 204);
  EXPECT_EQ(p.bodies, (std::vector<std::string>{"", "ok", "", "until close"}));
}

TEST(Http1Parser, TruncatedResponseIsAnError) {
  Parsed p = parse(Http1Parser::Kind::kResponse, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", SIZE_MAX, true);
  EXPECT_EQ(p.errorStatus, 502);
}

TEST(Http1Parser, AnswerToHeadHasNoBodyWhateverItsLength) {
  Http1Parser parser(Http1Parser::Kind::kResponse);
  parser.next(/*noBody=*/true);
  auto in = bytes("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  auto step = parser.feed(in);
  ASSERT_EQ(step.event, Event::kHead);
  EXPECT_EQ(step.consumed, 38u);
  step = parser.feed(in.subspan(38));
  EXPECT_EQ(step.event, Event::kEnd);
  EXPECT_EQ(step.consumed, 0u);
  parser.next();
  step = parser.feed(in.subspan(38));
  EXPECT_EQ(step.event, Event::kHead);
}

TEST(Http1Parser, KeepAliveAndUpgradeAreReported) {
  Http1Parser parser(Http1Parser::Kind::kRequest);
  auto step = parser.feed(bytes("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"));
  ASSERT_EQ(step.event, Event::kHead);
  EXPECT_FALSE(parser.keepAlive());
  Http1Parser upgrade(Http1Parser::Kind::kRequest);
  step = upgrade.feed(bytes("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"));
  ASSERT_EQ(step.event, Event::kHead);
  EXPECT_TRUE(upgrade.upgrade());
  Http1Parser http10(Http1Parser::Kind::kRequest);
  step = http10.feed(bytes("GET / HTTP/1.0\r\n\r\n"));
  ASSERT_EQ(step.event, Event::kHead);
  EXPECT_FALSE(http10.keepAlive());
}

}  // namespace
}  // namespace sluice::ztunnel::l7
