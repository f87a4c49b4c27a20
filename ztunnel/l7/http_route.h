// A VirtualService's http routes as the tunnel decides by them: compiled once per
// configuration snapshot (regexes with RE2, as Istio), then matched per request by pure
// functions (tested by tables). First matching route wins; a route's match list is OR, the
// conditions inside one match are AND (Istio's HTTPMatchRequest).
#pragma once

#include <cstdint>
#include <functional>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "l7/http_head.h"
#include "l7/retry_policy.h"
#include "sluice/common/error.h"
#include "sluice/config/v1/config.pb.h"

namespace re2 {
class RE2;
}

namespace sluice::ztunnel::l7 {

struct StringMatcher {
  enum class Kind { kAny, kExact, kPrefix, kRegex } kind = Kind::kAny;
  std::string value;
  std::shared_ptr<const re2::RE2> regex;  // kRegex: full match, as Envoy's safe_regex

  static Result<StringMatcher> compile(const config::v1::StringMatch& match);
  bool matches(std::string_view s) const;
};

struct RequestMatcher {
  StringMatcher uri, method, authority;
  std::vector<std::pair<std::string, StringMatcher>> headers;         // each must be present and match
  std::vector<std::pair<std::string, StringMatcher>> withoutHeaders;  // none may match
  std::vector<std::pair<std::string, StringMatcher>> queryParams;
  uint16_t port = 0;  // 0: any
  std::map<std::string, std::string> sourceLabels;
  std::string sourceNamespace;
};

// One weighted destination of a route: a service (by FQDN), optionally a subset (its labels
// resolved from the DestinationRule) and port.
struct RouteTarget {
  std::string host;
  std::string subset;
  std::map<std::string, std::string> subsetLabels;
  uint16_t port = 0;  // 0: the port the request came to
  int weight = 100;
};

struct HeaderEdits {
  std::vector<std::pair<std::string, std::string>> set, add;
  std::vector<std::string> remove;
  bool empty() const { return set.empty() && add.empty() && remove.empty(); }
  // Istio's order: remove, then set (replacing), then add (appending).
  void apply(HttpHead& head) const;
};

struct HttpRouteRule {
  std::string name;
  std::vector<RequestMatcher> matches;  // empty: every request
  std::vector<RouteTarget> targets;
  std::optional<std::string> rewriteUri, rewriteAuthority;
  struct Redirect {
    std::string uri, authority;
    int code = 301;
  };
  std::optional<Redirect> redirect;
  struct DirectResponse {
    int status = 200;
    std::string body;
  };
  std::optional<DirectResponse> directResponse;
  HeaderEdits requestHeaders, responseHeaders;
  // VirtualService `fault`: a delay before the request goes on, and/or an answer the tunnel
  // gives instead of the upstream's, each for a share of the requests (percent, 0-100).
  struct Fault {
    std::chrono::milliseconds delay{0};
    double delayPercent = 0;
    int abortStatus = 0;                // HTTP status (0: no abort, or a gRPC one)
    std::optional<int> abortGrpcStatus;  // grpcStatus: gRPC requests get it as grpc-status
    double abortPercent = 0;
    bool aborts() const { return abortStatus != 0 || abortGrpcStatus.has_value(); }
  };
  std::optional<Fault> fault;
  // VirtualService `timeout`: from the request's end to the response's (0: none, Istio's
  // default for HTTP routes).
  std::chrono::milliseconds timeout{0};
  RetryPolicy retries = istioDefaultRetries();  // VirtualService `retries`, else Istio's default
  // VirtualService `mirror` with `mirrorPercentage`, or `mirrors`: copies of a share of the
  // requests go to other destinations, fire and forget (proxy/mirror_request.h); each mirror
  // picks its share on its own.
  struct Mirror {
    RouteTarget target;    // weight unused
    double percent = 100;  // of the requests, 0-100
  };
  std::vector<Mirror> mirrors;
};

// What a route's fault does to one request: `random` uniform (its halves decide the delay and
// the abort independently, as Envoy's two percentages do).
struct FaultChoice {
  std::chrono::milliseconds delay{0};  // 0: none
  bool abort = false;
};
FaultChoice chooseFault(const HttpRouteRule::Fault& fault, uint64_t random);

// Whether this request is mirrored: `random` uniform, below `percent`% of its range.
bool mirrorChosen(double percent, uint64_t random);

// The authority a mirrored request carries: "-shadow" appended to the host, before any port
// (Envoy's and Istio's convention: "reviews:9080" -> "reviews-shadow:9080"), so the mirror's
// logs and routes can tell copies from real traffic.
std::string shadowAuthority(std::string_view authority);

struct HttpRouteTable {
  std::vector<HttpRouteRule> rules;
};

// What a request is matched on besides its head.
struct RequestContext {
  uint16_t port = 0;  // the service port the app connected to
  std::string_view sourceNamespace;
  const std::map<std::string, std::string>* sourceLabels = nullptr;  // null: unknown source
};

struct RouteMatch {
  const HttpRouteRule* rule = nullptr;  // null: no route matched (404, response flag NR)
  const RequestMatcher* matcher = nullptr;  // the match that selected it (null: a rule without matches)
};

RouteMatch matchRoute(const HttpRouteTable& table, const HttpHead& request, const RequestContext& context);

// The weighted choice among a rule's targets; `random` uniform. Null when it has none.
const RouteTarget* pickTarget(const HttpRouteRule& rule, uint64_t random);

// rewrite.uri replaces the prefix a prefix match matched, else the whole path (the query is
// kept); rewrite.authority replaces Host.
void applyRewrite(const HttpRouteRule& rule, const RequestMatcher* matcher, HttpHead& request);

// Location of a redirect: `scheme://authority/path?query` with the redirect's parts replacing
// the request's.
std::string redirectLocation(const HttpRouteRule::Redirect& redirect, const HttpHead& request);

// Compiles a VirtualService's http routes. `resolveSubset(host, subset)` gives a subset's
// labels, or an error when no DestinationRule defines it; `fqdn(host)` completes short names.
using SubsetResolver = std::function<Result<std::map<std::string, std::string>>(const std::string& host, const std::string& subset)>;
using HostResolver = std::function<std::string(const std::string& host)>;
Result<HttpRouteTable> compileRoutes(const config::v1::VirtualService& vs, const HostResolver& fqdn,
                                     const SubsetResolver& resolveSubset);

}  // namespace sluice::ztunnel::l7
