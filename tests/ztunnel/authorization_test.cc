// AuthorizationPolicy semantics, table-driven, with policies written as operators write them.
#include "authz/authorization.h"

#include <gtest/gtest.h>

#include "config/config_loader.h"

namespace sluice::ztunnel {
namespace {

std::string policy(const std::string& name, const std::string& spec, const std::string& ns = "shop") {
  return "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: " + name + ", namespace: " + ns +
         "}\nspec: " + spec + "\n---\n";
}

struct AuthzCase {
  const char* description;
  std::string policies;  // YAML
  ConnectionAttributes connection;
  bool allowed;
  const char* decidedBy;  // policy name or ""
};

class Authorize : public ::testing::TestWithParam<AuthzCase> {};

TEST_P(Authorize, Table) {
  const auto& c = GetParam();
  controller::ConfigSet set;
  if (!c.policies.empty()) {
    auto loaded = controller::loadConfigText("p.yaml", c.policies, set);
    ASSERT_TRUE(loaded.has_value()) << loaded.error().message();
  }
  std::vector<const config::v1::AuthorizationPolicy*> all;
  for (const auto& [_, r] : set.resources) all.push_back(&r.resource.authorization_policy());
  auto applicable = applicablePolicies(all, "shop", {{"app", "web"}});
  auto result = authorize(applicable, c.connection);
  EXPECT_EQ(result.allowed, c.allowed) << c.description << ": " << result.reason;
  EXPECT_EQ(result.policy, c.decidedBy) << c.description;
  EXPECT_FALSE(result.reason.empty());
}

const std::string kDenyEvil = policy("deny-evil", "{action: DENY, rules: [{from: [{source: {namespaces: [evil]}}]}]}");
const std::string kAllowFrontend = policy(
    "allow-frontend",
    "{selector: {matchLabels: {app: web}}, rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/frontend]}}], "
    "to: [{operation: {ports: ['8080']}}]}]}");
const ConnectionAttributes kFrontend{"cluster.local/ns/shop/sa/frontend", "10.244.0.2", 8080};

INSTANTIATE_TEST_SUITE_P(
    Table, Authorize,
    ::testing::Values(
        AuthzCase{"no policy at all", "", kFrontend, true, ""},
        AuthzCase{"allowed principal and port", kDenyEvil + kAllowFrontend, kFrontend, true, "shop/allow-frontend"},
        AuthzCase{"allowed principal, other port", kDenyEvil + kAllowFrontend,
                  {"cluster.local/ns/shop/sa/frontend", "10.244.0.2", 9090}, false, ""},
        AuthzCase{"DENY is evaluated first", kDenyEvil + kAllowFrontend, {"cluster.local/ns/evil/sa/frontend", "10.244.0.9", 8080},
                  false, "shop/deny-evil"},
        AuthzCase{"plaintext never matches principals", kAllowFrontend, {"", "10.244.0.2", 8080}, false, ""},
        AuthzCase{"only a DENY policy that does not match", kDenyEvil, {"cluster.local/ns/shop/sa/x", "10.0.0.1", 1}, true, ""},
        AuthzCase{"an empty ALLOW policy denies everything", policy("nothing", "{}"), kFrontend, false, ""},
        AuthzCase{"ALLOW with one empty rule allows everything", policy("everything", "{rules: [{}]}"), {"", "1.2.3.4", 1}, true,
                  "shop/everything"},
        AuthzCase{"principal prefix wildcard", policy("ns-wide", "{rules: [{from: [{source: {principals: ['cluster.local/ns/shop/*']}}]}]}"),
                  kFrontend, true, "shop/ns-wide"},
        AuthzCase{"principal suffix wildcard", policy("sa-any-ns", "{rules: [{from: [{source: {principals: ['*/sa/frontend']}}]}]}"),
                  kFrontend, true, "shop/sa-any-ns"},
        AuthzCase{"namespaces from the identity", policy("same-ns", "{rules: [{from: [{source: {namespaces: [shop]}}]}]}"),
                  kFrontend, true, "shop/same-ns"},
        AuthzCase{"notPrincipals excludes", policy("not-bad", "{rules: [{from: [{source: {notPrincipals: ['*/sa/frontend']}}]}]}"),
                  kFrontend, false, ""},
        AuthzCase{"ipBlocks inside", policy("pods", "{rules: [{from: [{source: {ipBlocks: [10.244.0.0/16]}}]}]}"),
                  {"", "10.244.3.4", 80}, true, "shop/pods"},
        AuthzCase{"ipBlocks outside", policy("pods", "{rules: [{from: [{source: {ipBlocks: [10.244.0.0/16]}}]}]}"),
                  {"", "192.168.1.1", 80}, false, ""},
        AuthzCase{"ipv6 block", policy("v6", "{rules: [{from: [{source: {ipBlocks: ['fd00:10:244::/48']}}]}]}"),
                  {"", "fd00:10:244:1::2", 80}, true, "shop/v6"},
        AuthzCase{"DENY everything outside 10/8", policy("outside", "{action: DENY, rules: [{from: [{source: {notIpBlocks: [10.0.0.0/8]}}]}]}"),
                  {"", "192.168.1.1", 80}, false, "shop/outside"},
        AuthzCase{"DENY outside 10/8 lets 10/8 in", policy("outside", "{action: DENY, rules: [{from: [{source: {notIpBlocks: [10.0.0.0/8]}}]}]}"),
                  {"", "10.1.1.1", 80}, true, ""},
        AuthzCase{"notPorts", policy("not-admin", "{rules: [{to: [{operation: {notPorts: ['15000']}}]}]}"),
                  {"", "10.1.1.1", 15000}, false, ""},
        AuthzCase{"policy for other workloads does not apply",
                  policy("db-only", "{selector: {matchLabels: {app: db}}, rules: [{from: [{source: {namespaces: [x]}}]}]}"), kFrontend,
                  true, ""},
        AuthzCase{"policy in another namespace does not apply", policy("elsewhere", "{}", "other"), kFrontend, true, ""},
        AuthzCase{"root namespace policy applies mesh-wide", policy("mesh-deny", "{action: DENY, rules: [{}]}", "istio-system"),
                  kFrontend, false, "istio-system/mesh-deny"}));

}  // namespace
}  // namespace sluice::ztunnel
