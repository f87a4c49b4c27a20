#include "l7/http_route.h"

#include <fmt/format.h>
#include <google/protobuf/util/time_util.h>
#include <re2/re2.h>

namespace sluice::ztunnel::l7 {
namespace v1 = config::v1;

Result<StringMatcher> StringMatcher::compile(const v1::StringMatch& match) {
  StringMatcher m;
  switch (match.match_type_case()) {
    case v1::StringMatch::kExact:
      m.kind = Kind::kExact;
      m.value = match.exact();
      break;
    case v1::StringMatch::kPrefix:
      m.kind = Kind::kPrefix;
      m.value = match.prefix();
      break;
    case v1::StringMatch::kRegex: {
      m.kind = Kind::kRegex;
      m.value = match.regex();
      auto regex = std::make_shared<re2::RE2>(match.regex(), re2::RE2::Quiet);
      if (!regex->ok()) return fail(fmt::format("regex '{}': {}", match.regex(), regex->error()));
      m.regex = std::move(regex);
      break;
    }
    case v1::StringMatch::MATCH_TYPE_NOT_SET:
      break;
  }
  return m;
}

bool StringMatcher::matches(std::string_view s) const {
  switch (kind) {
    case Kind::kAny: return true;
    case Kind::kExact: return s == value;
    case Kind::kPrefix: return s.starts_with(value);
    case Kind::kRegex: return re2::RE2::FullMatch(re2::StringPiece(s.data(), s.size()), *regex);
  }
  return false;
}

void HeaderEdits::apply(HttpHead& head) const {
  for (const auto& name : remove) head.remove(name);
  for (const auto& [name, value] : set) head.set(name, value);
  for (const auto& [name, value] : add) head.add(name, value);
}

namespace {

// The value of query parameter `name` in `query` ("a=1&b=2"), if present ("" for "a" alone).
std::optional<std::string_view> queryParam(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) return eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

bool matchesRequest(const RequestMatcher& m, const HttpHead& request, const RequestContext& context) {
  if (m.port != 0 && m.port != context.port) return false;
  if (!m.uri.matches(request.path())) return false;
  if (!m.method.matches(request.method)) return false;
  if (!m.authority.matches(request.authority())) return false;
  for (const auto& [name, matcher] : m.headers) {
    const std::string* value = request.find(name);
    if (value == nullptr || !matcher.matches(*value)) return false;
  }
  for (const auto& [name, matcher] : m.withoutHeaders) {
    const std::string* value = request.find(name);
    if (value != nullptr && matcher.matches(*value)) return false;
  }
  for (const auto& [name, matcher] : m.queryParams) {
    auto value = queryParam(request.query(), name);
    if (!value || !matcher.matches(*value)) return false;
  }
  if (!m.sourceNamespace.empty() && m.sourceNamespace != context.sourceNamespace) return false;
  if (!m.sourceLabels.empty()) {
    if (context.sourceLabels == nullptr) return false;
    for (const auto& [k, v] : m.sourceLabels) {
      auto it = context.sourceLabels->find(k);
      if (it == context.sourceLabels->end() || it->second != v) return false;
    }
  }
  return true;
}

Result<std::vector<std::pair<std::string, StringMatcher>>> compileMap(
    const google::protobuf::Map<std::string, v1::StringMatch>& in) {
  std::vector<std::pair<std::string, StringMatcher>> out;
  for (const auto& [name, match] : in) {
    auto compiled = StringMatcher::compile(match);
    if (!compiled) return fail(fmt::format("{}: {}", name, compiled.error().message()));
    out.emplace_back(name, std::move(*compiled));
  }
  // Protobuf maps have no order; a fixed one keeps matching deterministic.
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

HeaderEdits compileEdits(const v1::HeaderOperations& ops) {
  HeaderEdits edits;
  for (const auto& [k, v] : ops.set()) edits.set.emplace_back(k, v);
  for (const auto& [k, v] : ops.add()) edits.add.emplace_back(k, v);
  edits.remove.assign(ops.remove().begin(), ops.remove().end());
  std::sort(edits.set.begin(), edits.set.end());
  std::sort(edits.add.begin(), edits.add.end());
  return edits;
}

}  // namespace

RouteMatch matchRoute(const HttpRouteTable& table, const HttpHead& request, const RequestContext& context) {
  for (const auto& rule : table.rules) {
    if (rule.matches.empty()) return {&rule, nullptr};
    for (const auto& m : rule.matches) {
      if (matchesRequest(m, request, context)) return {&rule, &m};
    }
  }
  return {};
}

const RouteTarget* pickTarget(const HttpRouteRule& rule, uint64_t random) {
  if (rule.targets.empty()) return nullptr;
  int total = 0;
  for (const auto& t : rule.targets) total += t.weight;
  if (total <= 0) return &rule.targets.front();
  int point = static_cast<int>(random % static_cast<uint64_t>(total));
  for (const auto& t : rule.targets) {
    if (point < t.weight) return &t;
    point -= t.weight;
  }
  return &rule.targets.back();
}

void applyRewrite(const HttpRouteRule& rule, const RequestMatcher* matcher, HttpHead& request) {
  if (rule.rewriteUri) {
    std::string path(request.path());
    std::string query(request.query());
    if (matcher != nullptr && matcher->uri.kind == StringMatcher::Kind::kPrefix) {
      path = *rule.rewriteUri + path.substr(matcher->uri.value.size());
    } else {
      path = *rule.rewriteUri;
    }
    request.target = query.empty() && request.target.find('?') == std::string::npos ? path : path + "?" + query;
  }
  if (rule.rewriteAuthority) request.set("host", *rule.rewriteAuthority);
}

std::string redirectLocation(const HttpRouteRule::Redirect& redirect, const HttpHead& request) {
  std::string authority = redirect.authority.empty() ? std::string(request.authority()) : redirect.authority;
  std::string path = redirect.uri.empty() ? std::string(request.path()) : redirect.uri;
  std::string query(request.query());
  return fmt::format("http://{}{}{}{}", authority, path, query.empty() ? "" : "?", query);
}

namespace {
std::chrono::milliseconds millis(const google::protobuf::Duration& d) {
  return std::chrono::milliseconds(google::protobuf::util::TimeUtil::DurationToMilliseconds(d));
}
}  // namespace

FaultChoice chooseFault(const HttpRouteRule::Fault& fault, uint64_t random) {
  // A share of 2^32 from each half of `random`: below percent% of it, the fault applies.
  auto applies = [](double percent, uint32_t draw) { return static_cast<double>(draw) < percent / 100.0 * 4294967296.0; };
  FaultChoice choice;
  if (fault.delay.count() > 0 && applies(fault.delayPercent, static_cast<uint32_t>(random >> 32))) choice.delay = fault.delay;
  choice.abort = fault.aborts() && applies(fault.abortPercent, static_cast<uint32_t>(random));
  return choice;
}

bool mirrorChosen(double percent, uint64_t random) {
  if (percent >= 100) return true;
  return static_cast<double>(random >> 11) < percent / 100.0 * 9007199254740992.0;  // 2^53 draws
}

std::string shadowAuthority(std::string_view authority) {
  // The port follows the last ':' unless that is inside an IPv6 literal's brackets.
  size_t colon = authority.rfind(':');
  size_t bracket = authority.rfind(']');
  if (colon == std::string_view::npos || (bracket != std::string_view::npos && colon < bracket) ||
      (bracket == std::string_view::npos && authority.find(':') != colon)) {
    return std::string(authority) + "-shadow";
  }
  return std::string(authority.substr(0, colon)) + "-shadow" + std::string(authority.substr(colon));
}

Result<HttpRouteTable> compileRoutes(const v1::VirtualService& vs, const HostResolver& fqdn,
                                     const SubsetResolver& resolveSubset) {
  HttpRouteTable table;
  for (int i = 0; i < vs.http_size(); ++i) {
    const v1::HttpRoute& in = vs.http(i);
    auto where = [&](const std::string& what) {
      return fmt::format("VirtualService {}/{}: http[{}]{}", vs.namespace_(), vs.name(), i, what);
    };
    HttpRouteRule rule;
    rule.name = in.name();
    for (const auto& m : in.match()) {
      RequestMatcher matcher;
      for (auto [field, target] : {std::pair{&m.uri(), &matcher.uri}, std::pair{&m.method(), &matcher.method},
                                   std::pair{&m.authority(), &matcher.authority}}) {
        auto compiled = StringMatcher::compile(*field);
        if (!compiled) return fail(where(": " + compiled.error().message()));
        *target = std::move(*compiled);
      }
      auto headers = compileMap(m.headers());
      auto without = compileMap(m.without_headers());
      auto query = compileMap(m.query_params());
      for (auto* r : {&headers, &without, &query}) {
        if (!*r) return fail(where(": " + r->error().message()));
      }
      matcher.headers = std::move(*headers);
      matcher.withoutHeaders = std::move(*without);
      matcher.queryParams = std::move(*query);
      matcher.port = static_cast<uint16_t>(m.port());
      matcher.sourceLabels = {m.source_labels().begin(), m.source_labels().end()};
      matcher.sourceNamespace = m.source_namespace();
      rule.matches.push_back(std::move(matcher));
    }
    for (const auto& d : in.route()) {
      RouteTarget target;
      target.host = fqdn(d.destination().host());
      target.subset = d.destination().subset();
      target.port = static_cast<uint16_t>(d.destination().port());
      target.weight = in.route_size() == 1 && d.weight() == 0 ? 100 : d.weight();
      if (!target.subset.empty()) {
        auto labels = resolveSubset(target.host, target.subset);
        if (!labels) return fail(where(": " + labels.error().message()));
        target.subsetLabels = std::move(*labels);
      }
      rule.targets.push_back(std::move(target));
    }
    if (in.has_rewrite()) {
      if (!in.rewrite().uri().empty()) rule.rewriteUri = in.rewrite().uri();
      if (!in.rewrite().authority().empty()) rule.rewriteAuthority = in.rewrite().authority();
    }
    if (in.has_redirect()) {
      rule.redirect = HttpRouteRule::Redirect{in.redirect().uri(), in.redirect().authority(),
                                              in.redirect().redirect_code() == 0 ? 301 : static_cast<int>(in.redirect().redirect_code())};
    }
    if (in.has_direct_response()) {
      rule.directResponse = HttpRouteRule::DirectResponse{static_cast<int>(in.direct_response().status()), in.direct_response().body()};
    }
    rule.requestHeaders = compileEdits(in.headers().request());
    rule.responseHeaders = compileEdits(in.headers().response());
    if (in.has_fault()) {
      HttpRouteRule::Fault fault;
      if (in.fault().has_delay()) {
        fault.delay = millis(in.fault().delay().fixed_delay());
        fault.delayPercent = in.fault().delay().percentage();
      }
      if (in.fault().has_abort()) {
        fault.abortStatus = in.fault().abort().http_status();
        if (in.fault().abort().has_grpc_status()) fault.abortGrpcStatus = in.fault().abort().grpc_status();
        fault.abortPercent = in.fault().abort().percentage();
      }
      rule.fault = fault;
    }
    if (in.has_retries()) {
      auto on = parseRetryOn(in.retries().retry_on());
      if (!on) return fail(where(".retries.retryOn: " + on.error().message()));
      rule.retries.attempts = in.retries().attempts();
      // Istio: retryOn left empty keeps its default conditions.
      if (!in.retries().retry_on().empty()) rule.retries.on = std::move(*on);
      rule.retries.perTryTimeout = millis(in.retries().per_try_timeout());
    }
    if (in.has_timeout()) rule.timeout = millis(in.timeout());
    // `mirror` (one) or `mirrors` (any number; the controller never sets both). The
    // controller stores an absent percentage as 0: Istio's default, all of them.
    auto addMirror = [&](const v1::Destination& d, double percent, const std::string& field) -> Status {
      HttpRouteRule::Mirror mirror;
      mirror.target.host = fqdn(d.host());
      mirror.target.subset = d.subset();
      mirror.target.port = static_cast<uint16_t>(d.port());
      if (!mirror.target.subset.empty()) {
        auto labels = resolveSubset(mirror.target.host, mirror.target.subset);
        if (!labels) return fail(where(field + ": " + labels.error().message()));
        mirror.target.subsetLabels = std::move(*labels);
      }
      if (percent > 0) mirror.percent = percent;
      rule.mirrors.push_back(std::move(mirror));
      return {};
    };
    if (in.has_mirror()) {
      if (auto added = addMirror(in.mirror(), in.mirror_percentage(), ".mirror"); !added) return fail(added.error());
    }
    for (int m = 0; m < in.mirrors_size(); ++m) {
      auto added = addMirror(in.mirrors(m).destination(), in.mirrors(m).percentage(), fmt::format(".mirrors[{}]", m));
      if (!added) return fail(added.error());
    }
    table.rules.push_back(std::move(rule));
  }
  return table;
}

}  // namespace sluice::ztunnel::l7
