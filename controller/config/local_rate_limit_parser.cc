// Sluice's own kind, LocalRateLimit (sluice.io/v1alpha1), read with the same strictness as the
// Istio kinds: every field known, every number in range, the bucket able to refill.
//
//   apiVersion: sluice.io/v1alpha1
//   kind: LocalRateLimit
//   metadata: {name: web, namespace: shop}
//   spec:
//     host: web                       # the Service (short names are relative to the namespace)
//     tokenBucket: {maxTokens: 100, tokensPerFill: 10, fillInterval: 100ms}
//     routes: [checkout]              # optional: only these http routes, a bucket each
//     perSourcePrincipal: true        # optional: a bucket per client identity
#include <fmt/format.h>
#include <google/protobuf/util/time_util.h>

#include <set>

#include "config/resource_parsers.h"

namespace sluice::controller {
namespace v1 = config::v1;
using R = StrictReader;

v1::LocalRateLimit parseLocalRateLimit(const ObjectMeta& meta, const YAML::Node& spec, R& r) {
  v1::LocalRateLimit limit;
  limit.set_name(meta.name);
  limit.set_namespace_(meta.ns);
  if (!r.mapping(spec, "spec", {"host", "tokenBucket", "routes", "perSourcePrincipal"})) return limit;
  r.string(spec["host"], "spec.host", limit.mutable_host(), true);
  const YAML::Node bucket = spec["tokenBucket"];
  if (!bucket) {
    r.fail("spec.tokenBucket", "is required ({maxTokens, tokensPerFill, fillInterval})");
    return limit;
  }
  if (!r.mapping(bucket, "spec.tokenBucket", {"maxTokens", "tokensPerFill", "fillInterval"})) return limit;
  if (!bucket["maxTokens"]) r.fail("spec.tokenBucket.maxTokens", "is required");
  if (!bucket["fillInterval"]) r.fail("spec.tokenBucket.fillInterval", "is required");
  uint32_t value = 0;
  r.unsignedInteger(bucket["maxTokens"], "spec.tokenBucket.maxTokens", &value, 1u << 30);
  limit.set_max_tokens(std::exchange(value, 0));
  uint32_t perFill = 1;  // Envoy's default
  if (bucket["tokensPerFill"]) r.unsignedInteger(bucket["tokensPerFill"], "spec.tokenBucket.tokensPerFill", &perFill, 1u << 30);
  limit.set_tokens_per_fill(perFill);
  r.duration(bucket["fillInterval"], "spec.tokenBucket.fillInterval", limit.mutable_fill_interval());
  if (r.failed()) return limit;
  // The first failure is the one reported (StrictReader keeps it): the checks run in order.
  if (limit.max_tokens() == 0) r.fail("spec.tokenBucket.maxTokens", "must be at least 1");
  if (limit.tokens_per_fill() == 0) r.fail("spec.tokenBucket.tokensPerFill", "must be at least 1");
  // Envoy's floor: a finer interval costs timer work and adds nothing a larger fill can't say.
  if (google::protobuf::util::TimeUtil::DurationToMilliseconds(limit.fill_interval()) < 50) {
    r.fail("spec.tokenBucket.fillInterval", "must be at least 50ms");
  }
  r.stringList(spec["routes"], "spec.routes", limit.mutable_routes());
  std::set<std::string> seen;
  for (int i = 0; i < limit.routes_size(); ++i) {
    std::string path = fmt::format("spec.routes[{}]", i);
    if (limit.routes(i).empty()) r.fail(path, "is empty: name an http route of the host's VirtualService");
    if (!seen.insert(limit.routes(i)).second) r.fail(path, fmt::format("names route {} twice", limit.routes(i)));
  }
  bool perPrincipal = false;
  r.boolean(spec["perSourcePrincipal"], "spec.perSourcePrincipal", &perPrincipal);
  limit.set_per_source_principal(perPrincipal);
  return limit;
}

}  // namespace sluice::controller
