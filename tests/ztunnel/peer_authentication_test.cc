// PeerAuthentication precedence, table-driven.
#include "authz/peer_authentication.h"

#include <gtest/gtest.h>

namespace sluice::ztunnel {
namespace {

namespace v1 = config::v1;
using Mode = v1::PeerAuthentication::Mode;

std::shared_ptr<const v1::PeerAuthentication> policy(const std::string& ns, const std::string& name, Mode mode,
                                                     std::map<std::string, std::string> selector = {},
                                                     std::map<uint32_t, Mode> ports = {}) {
  auto p = std::make_shared<v1::PeerAuthentication>();
  p->set_namespace_(ns);
  p->set_name(name);
  p->set_mode(mode);
  for (const auto& [k, v] : selector) (*p->mutable_selector()->mutable_match_labels())[k] = v;
  for (const auto& [port, m] : ports) (*p->mutable_port_level_mtls())[port] = m;
  return p;
}

struct Case {
  const char* name;
  std::vector<std::shared_ptr<const v1::PeerAuthentication>> policies;
  uint16_t port;
  MtlsMode want;
  const char* decidedBy;
};

TEST(PeerAuthentication, MostSpecificPolicyDecides) {
  std::map<std::string, std::string> labels{{"app", "db"}};
  const Case cases[] = {
      {"no policy: permissive", {}, 5432, MtlsMode::kPermissive, ""},
      {"mesh strict", {policy("istio-system", "default", v1::PeerAuthentication::STRICT)}, 5432, MtlsMode::kStrict, "istio-system/default"},
      {"namespace overrides mesh",
       {policy("istio-system", "default", v1::PeerAuthentication::STRICT), policy("shop", "ns", v1::PeerAuthentication::PERMISSIVE)},
       5432, MtlsMode::kPermissive, "shop/ns"},
      {"workload overrides namespace",
       {policy("shop", "ns", v1::PeerAuthentication::PERMISSIVE),
        policy("shop", "db", v1::PeerAuthentication::STRICT, {{"app", "db"}})},
       5432, MtlsMode::kStrict, "shop/db"},
      {"selector not matching is ignored",
       {policy("shop", "ns", v1::PeerAuthentication::STRICT), policy("shop", "web", v1::PeerAuthentication::PERMISSIVE, {{"app", "web"}})},
       5432, MtlsMode::kStrict, "shop/ns"},
      {"other namespace is ignored", {policy("other", "ns", v1::PeerAuthentication::STRICT)}, 5432, MtlsMode::kPermissive, ""},
      {"UNSET inherits",
       {policy("istio-system", "default", v1::PeerAuthentication::STRICT), policy("shop", "ns", v1::PeerAuthentication::UNSET)},
       5432, MtlsMode::kStrict, "istio-system/default"},
      {"port level wins on its port",
       {policy("shop", "db", v1::PeerAuthentication::STRICT, {{"app", "db"}}, {{9090, v1::PeerAuthentication::PERMISSIVE}})},
       9090, MtlsMode::kPermissive, "shop/db"},
      {"port level only on its port",
       {policy("shop", "db", v1::PeerAuthentication::STRICT, {{"app", "db"}}, {{9090, v1::PeerAuthentication::PERMISSIVE}})},
       5432, MtlsMode::kStrict, "shop/db"},
      {"DISABLE allows plaintext", {policy("shop", "ns", v1::PeerAuthentication::DISABLE)}, 5432, MtlsMode::kPermissive, "shop/ns"},
      {"selector policy in the root namespace is not mesh-wide",
       {policy("istio-system", "x", v1::PeerAuthentication::STRICT, {{"app", "db"}})}, 5432, MtlsMode::kPermissive, ""},
  };
  for (const auto& c : cases) {
    MtlsDecision d = effectiveMtlsMode(c.policies, "shop", labels, c.port);
    EXPECT_EQ(d.mode, c.want) << c.name;
    EXPECT_EQ(d.policy, c.decidedBy) << c.name;
  }
}

}  // namespace
}  // namespace sluice::ztunnel
