// HTTP/2 header blocks to route-table heads and back, and gRPC's status mapping: tables.
#include "l7/http2_fields.h"

#include <gtest/gtest.h>

namespace sluice::ztunnel::l7 {
namespace {

using Fields = std::vector<HttpHeader>;

std::string render(const Fields& fields) {
  std::string out;
  for (const auto& f : fields) out += f.name + "=" + f.value + ";";
  return out;
}

TEST(Http2Fields, RequestRoundTripsThroughTheRoutingHead) {
  struct Case {
    Fields in;
    bool valid;
    std::string method, target, host, out;
  };
  const Case cases[] = {
      {{{":method", "GET"}, {":scheme", "http"}, {":authority", "web:80"}, {":path", "/a?b=1"}, {"x-canary", "1"}},
       true, "GET", "/a?b=1", "web:80",
       ":method=GET;:scheme=http;:authority=web:80;:path=/a?b=1;x-canary=1;"},
      // Host instead of :authority (RFC 9113 §8.3.1 allows it); the scheme defaults to http.
      {{{":method", "POST"}, {":path", "/s/M"}, {"host", "grpc.default"}, {"te", "trailers"}},
       true, "POST", "/s/M", "grpc.default",
       ":method=POST;:scheme=http;:authority=grpc.default;:path=/s/M;te=trailers;"},
      {{{":method", "GET"}, {":scheme", "http"}, {":path", "/"}}, false, "", "", "", ""},          // no authority
      {{{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}}, false, "", "", "", ""},     // no path
      {{{":scheme", "http"}, {":authority", "a"}, {":path", "/"}}, false, "", "", "", ""},         // no method
  };
  for (const auto& c : cases) {
    auto r = requestFromFields(c.in);
    ASSERT_EQ(r.has_value(), c.valid) << render(c.in);
    if (!c.valid) continue;
    EXPECT_EQ(r->head.method, c.method);
    EXPECT_EQ(r->head.target, c.target);
    EXPECT_EQ(r->head.authority(), c.host);
    EXPECT_EQ(render(fieldsFromRequest(*r)), c.out);
  }
}

TEST(Http2Fields, EditsNeverPutConnectionSpecificOrUppercaseFieldsOnTheWire) {
  auto r = requestFromFields({{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/"}});
  ASSERT_TRUE(r);
  r->head.set("host", "b.example");  // a rewrite of the authority
  r->head.add("Connection", "close");
  r->head.add("Transfer-Encoding", "chunked");
  r->head.add("TE", "gzip");
  r->head.add("X-Added", "1");
  EXPECT_EQ(render(fieldsFromRequest(*r)), ":method=GET;:scheme=http;:authority=b.example;:path=/;x-added=1;");

  HttpHead response = responseFromFields({{":status", "200"}, {"content-type", "application/grpc"}});
  EXPECT_EQ(response.status, 200);
  response.add("keep-alive", "timeout=5");
  response.add("x-edited", "yes");
  EXPECT_EQ(render(fieldsFromResponse(response)), ":status=200;content-type=application/grpc;x-edited=yes;");
  EXPECT_EQ(responseFromFields({{":status", "20x"}}).status, 0);
  EXPECT_EQ(render(forwardableTrailers({{"grpc-status", "0"}, {"connection", "x"}, {"grpc-message", "ok"}})),
            "grpc-status=0;grpc-message=ok;");
}

TEST(Http2Fields, GrpcIsRecognisedAndHttpStatusesMapAsTheSpecSays) {
  struct TypeCase {
    const char* type;
    bool grpc;
  };
  for (const auto& c : std::initializer_list<TypeCase>{{"application/grpc", true},
                                                       {"application/grpc+proto", true},
                                                       {"Application/GRPC;charset=utf-8", true},
                                                       {"application/grpc-web", false},
                                                       {"application/json", false},
                                                       {"", false}}) {
    HttpHead head;
    if (*c.type != 0) head.add("content-type", c.type);
    EXPECT_EQ(isGrpc(head), c.grpc) << c.type;
  }
  const std::pair<int, int> statuses[] = {{400, 13}, {401, 16}, {403, 7}, {404, 12}, {429, 14},
                                          {502, 14}, {503, 14}, {504, 14}, {500, 2},  {418, 2}};
  for (auto [http, grpc] : statuses) EXPECT_EQ(grpcStatusForHttp(http), grpc) << http;
}

}  // namespace
}  // namespace sluice::ztunnel::l7
