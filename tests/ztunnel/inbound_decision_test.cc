// The inbound verdict, table-driven: target validation, STRICT/PERMISSIVE, authorization.
#include "proxy/inbound_decision.h"

#include <gtest/gtest.h>

namespace sluice::ztunnel {
namespace {

namespace v1 = config::v1;
using V = InboundDecision::Verdict;

std::shared_ptr<v1::PeerAuthentication> strictFor(const std::string& app) {
  auto pa = std::make_shared<v1::PeerAuthentication>();
  pa->set_namespace_("shop");
  pa->set_name("strict-" + app);
  pa->set_mode(v1::PeerAuthentication::STRICT);
  (*pa->mutable_selector()->mutable_match_labels())["app"] = app;
  return pa;
}

ConfigSnapshot snapshotWith(bool strict, bool denyWeb) {
  ConfigSnapshot s;
  auto db = std::make_shared<WorkloadEntry>(WorkloadEntry{"u1", "db-0", "shop", "db", "node1", {{"app", "db"}}, {"10.244.1.5"}});
  s.workloadsByIp["10.244.1.5"] = db;
  if (strict) {
    auto pa = std::make_shared<v1::PeerAuthentication>();
    pa->set_namespace_("shop");
    pa->set_name("strict");
    pa->set_mode(v1::PeerAuthentication::STRICT);
    s.peerAuthentications.push_back(pa);
  }
  if (denyWeb) {
    auto ap = std::make_shared<v1::AuthorizationPolicy>();
    ap->set_namespace_("shop");
    ap->set_name("no-web");
    ap->set_action(v1::AuthorizationPolicy::DENY);
    ap->add_rules()->add_from()->add_principals("cluster.local/ns/shop/sa/web");
    s.authorizationPolicies.push_back(ap);
  }
  return s;
}

struct Case {
  const char* name;
  bool strict, denyWeb;
  InboundRequest request;
  V want;
  int status;
};

TEST(InboundDecision, Table) {
  const InboundPod pod{"shop", {"10.244.1.5", "fd00:10:244:1::5"}};
  const std::string web = "spiffe://cluster.local/ns/shop/sa/web", api = "spiffe://cluster.local/ns/shop/sa/api";
  const Case cases[] = {
      {"hbone to this pod", false, false, {true, web, "10.244.0.3", "10.244.1.5:5432"}, V::kAllow, 200},
      {"hbone to this pod over IPv6", false, false, {true, web, "fd00::3", "[fd00:10:244:1::5]:5432"}, V::kAllow, 200},
      {"hbone to another address: no open relay", false, false, {true, web, "10.244.0.3", "10.244.2.9:5432"}, V::kMalformed, 400},
      {"hbone to the tunnel's own port", false, false, {true, web, "10.244.0.3", "10.244.1.5:15008"}, V::kMalformed, 400},
      {"hbone to a name", false, false, {true, web, "10.244.0.3", "db.shop:5432"}, V::kMalformed, 400},
      {"hbone garbage", false, false, {true, web, "10.244.0.3", "]]]:x"}, V::kMalformed, 400},
      {"denied principal", false, true, {true, web, "10.244.0.3", "10.244.1.5:5432"}, V::kDenied, 401},
      {"other principal allowed", false, true, {true, api, "10.244.0.3", "10.244.1.5:5432"}, V::kAllow, 200},
      {"plaintext permissive", false, false, {false, "", "10.244.0.3", "10.244.1.5:5432"}, V::kAllow, 200},
      {"plaintext strict", true, false, {false, "", "10.244.0.3", "10.244.1.5:5432"}, V::kPlaintextRefused, 401},
      {"hbone under strict", true, false, {true, web, "10.244.0.3", "10.244.1.5:5432"}, V::kAllow, 200},
      {"plaintext v4-mapped target", false, false, {false, "", "10.244.0.3", "[::ffff:10.244.1.5]:5432"}, V::kAllow, 200},
  };
  for (const auto& c : cases) {
    ConfigSnapshot s = snapshotWith(c.strict, c.denyWeb);
    InboundDecision d = decideInbound(c.request, pod, s);
    EXPECT_EQ(d.verdict, c.want) << c.name << ": " << d.reason;
    EXPECT_EQ(d.httpStatus(), c.status) << c.name;
    if (c.want == V::kAllow) {
      EXPECT_EQ(d.target.port(), 5432) << c.name;
    } else {
      EXPECT_FALSE(d.reason.empty()) << c.name;
    }
  }
}

// A pod the configuration does not list yet (just started, or the controller is behind) is
// still selected by its labels as the node agent sent them: a label-selected STRICT holds from
// its first connection; the controller's labels win when it lists the pod.
TEST(InboundDecision, LabelsFromTheAgentSelectPolicyForAPodTheConfigurationDoesNotList) {
  ConfigSnapshot s;
  s.peerAuthentications.push_back(strictFor("newcomer"));
  const InboundRequest plaintext{false, "", "10.244.0.3", "10.244.1.9:8080"};
  InboundPod unlisted{"shop", {"10.244.1.9"}, {{"app", "newcomer"}}};
  EXPECT_EQ(decideInbound(plaintext, unlisted, s).verdict, V::kPlaintextRefused);
  InboundPod otherApp{"shop", {"10.244.1.9"}, {{"app", "other"}}};
  EXPECT_EQ(decideInbound(plaintext, otherApp, s).verdict, V::kAllow);
  // Listed by the controller with other labels: the controller's view decides.
  s.workloadsByIp["10.244.1.9"] =
      std::make_shared<WorkloadEntry>(WorkloadEntry{"u9", "n-0", "shop", "default", "node1", {{"app", "other"}}, {"10.244.1.9"}});
  EXPECT_EQ(decideInbound(plaintext, unlisted, s).verdict, V::kAllow);
}

}  // namespace
}  // namespace sluice::ztunnel
