// libFuzzer: the app side of the HTTP/2 and gRPC proxy (proxy/http2_outbound.h), fed hostile
// HTTP/2 bytes as a captured app can send them: every request the server session surfaces is
// turned into a routing head (l7/http2_fields.h), matched against routes with every kind of
// matcher (RE2 regexes included), rewritten, edited, hashed for consistentHash as the proxy
// does, turned back into HTTP/2 fields and answered (trailers-only, or body and trailers).
#include <cstddef>
#include <cstdint>
#include <string>

#include "http2/http2_session.h"
#include "l7/http2_fields.h"
#include "l7/http_route.h"
#include "proxy/load_balancer.h"

using namespace sluice::ztunnel;

namespace {

const l7::HttpRouteTable& routes() {
  static const l7::HttpRouteTable table = [] {
    sluice::config::v1::VirtualService vs;
    vs.set_name("web");
    vs.set_namespace_("shop");
    auto* canary = vs.add_http();
    auto* m = canary->add_match();
    (*m->mutable_headers())["x-canary"].set_regex("al+ways|[0-9]{1,3}");
    m->mutable_uri()->set_prefix("/api/");
    (*m->mutable_query_params())["v"].set_exact("2");
    canary->mutable_rewrite()->set_uri("/v2/");
    canary->mutable_rewrite()->set_authority("web-v2");
    auto* set = canary->mutable_headers()->mutable_request()->mutable_set();
    (*set)["x-routed"] = "canary";
    canary->mutable_headers()->mutable_response()->add_remove("server");
    canary->add_route()->mutable_destination()->set_host("web");
    auto* moved = vs.add_http();
    moved->add_match()->mutable_method()->set_exact("GET");
    moved->mutable_redirect()->set_uri("/new");
    moved->mutable_redirect()->set_redirect_code(308);
    auto* rest = vs.add_http();
    rest->add_route()->mutable_destination()->set_host("web");
    auto compiled = l7::compileRoutes(
        vs, [](const std::string& host) { return host + ".shop.svc.cluster.local"; },
        [](const std::string&, const std::string&) -> sluice::Result<std::map<std::string, std::string>> { return {}; });
    return compiled ? *compiled : l7::HttpRouteTable{};
  }();
  return table;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto session = http2::Http2Session::create(http2::Http2Session::Role::kServer, {.maxConcurrentStreams = 8});
  if (!session) return 0;
  auto& s = **session;
  static const std::map<std::string, std::string> labels{{"app", "client"}};
  LbPolicy cookie{.kind = LbPolicy::Kind::kConsistentHash, .key = LbPolicy::HashKey::kCookie, .keyName = "session",
                  .cookiePath = "/", .cookieTtl = std::chrono::seconds(60)};
  LbPolicy query{.kind = LbPolicy::Kind::kConsistentHash, .key = LbPolicy::HashKey::kQueryParameter, .keyName = "shard"};
  size_t offset = 0;
  for (int round = 0; round < 4 && offset < size; ++round) {
    size_t piece = round == 3 ? size - offset : std::min(size - offset, size / 4 + 1);
    if (!s.receive({data + offset, piece})) break;
    offset += piece;
    for (const auto& e : s.takeEvents()) {
      using Kind = http2::SessionEvent::Kind;
      if (e.kind == Kind::kRequest) {
        auto request = l7::requestFromFields(s.fields(e.stream));
        if (!request) {
          s.submitResponse(e.stream, {{":status", "400"}}, true);
          continue;
        }
        l7::RouteMatch match = l7::matchRoute(routes(), request->head, {80, "shop", &labels});
        if (match.rule != nullptr) {
          if (match.rule->redirect) (void)l7::redirectLocation(*match.rule->redirect, request->head);
          l7::applyRewrite(*match.rule, match.matcher, request->head);
          match.rule->requestHeaders.apply(request->head);
        }
        const std::string* cookieField = request->head.find("cookie");
        std::optional<std::string> fresh;
        (void)requestHash(cookie, {nullptr, cookieField ? std::string_view(*cookieField) : std::string_view{}, "", ""}, 1, &fresh);
        (void)requestHash(query, {nullptr, "", request->head.query(), ""}, 1, nullptr);
        (void)l7::fieldsFromRequest(*request);
        l7::HttpHead response = l7::responseFromFields({{":status", "200"}, {"server", "x"}});
        if (match.rule != nullptr) match.rule->responseHeaders.apply(response);
        if (l7::isGrpc(request->head)) {
          s.submitResponse(e.stream, {{":status", "200"}, {"grpc-status", "12"}}, true);
        } else {
          s.submitResponse(e.stream, l7::fieldsFromResponse(response), false);
          s.write(e.stream, {reinterpret_cast<const uint8_t*>("ok"), 2});
          s.finish(e.stream, l7::forwardableTrailers(s.trailers(e.stream)));
        }
      } else if (e.kind == Kind::kData) {
        std::string bytes;
        bytes.swap(s.inbox(e.stream));
        s.consumed(e.stream, bytes.size());
      } else if (e.kind == Kind::kClosed) {
        s.release(e.stream);
      }
    }
    std::string out;
    if (!s.produce(out)) break;
  }
  return 0;
}
