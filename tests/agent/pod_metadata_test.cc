// A pod's metadata at enrollment: from the API's Pod object (table), and through the client
// against the fake API server (GET by namespace and name, refusals for hostile names, another
// node, a replaced pod, a missing pod).
#include "daemon/pod_metadata.h"

#include <gtest/gtest.h>

#include "support/fake_kube_api.h"

namespace sluice::agent {
namespace {

using nlohmann::json;

json apiPod(const std::string& node = "node1", const std::string& uid = "uid-1") {
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata",
           {{"name", "web-1"}, {"namespace", "shop"}, {"uid", uid}, {"labels", {{"app", "web"}}},
            {"annotations", {{"traffic.sidecar.istio.io/excludeInboundPorts", "9090"}}}}},
          {"spec", {{"nodeName", node}, {"serviceAccountName", "web"}}}};
}

TEST(PodMetadata, FromTheApisPodObject) {
  auto m = podMetadataFromApi(apiPod(), "node1", "uid-1");
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->serviceAccount, "web");
  EXPECT_EQ(m->labels, (std::map<std::string, std::string>{{"app", "web"}}));
  EXPECT_EQ(m->annotations.at("traffic.sidecar.istio.io/excludeInboundPorts"), "9090");
  json bare = apiPod();
  bare["spec"].erase("serviceAccountName");
  bare["metadata"].erase("labels");
  auto defaults = podMetadataFromApi(bare, "node1", "");
  ASSERT_TRUE(defaults);
  EXPECT_EQ(defaults->serviceAccount, "default");
  EXPECT_TRUE(defaults->labels.empty());
}

struct Refusal {
  const char* name;
  json pod;
  const char* node;
  const char* uid;
  const char* error;
};

TEST(PodMetadata, PodsThatAreNotThisOneAreRefused) {
  json badLabel = apiPod();
  badLabel["metadata"]["labels"]["n"] = 3;
  const Refusal cases[] = {
      {"another node", apiPod("node2"), "node1", "uid-1", "scheduled on node 'node2', not on this node 'node1'"},
      {"replaced pod", apiPod("node1", "uid-2"), "node1", "uid-1", "the pod was replaced"},
      {"not a pod", json::array(), "node1", "", "not a Pod"},
      {"label not a string", badLabel, "node1", "", "labels.n is not a string"},
  };
  for (const auto& c : cases) {
    auto m = podMetadataFromApi(c.pod, c.node, c.uid);
    ASSERT_FALSE(m) << c.name;
    EXPECT_NE(m.error().message().find(c.error), std::string::npos) << c.name << ": " << m.error().message();
  }
}

TEST(PodMetadata, LookedUpInTheKubernetesApi) {
  kube::testing::FakeKubeApi api;
  kube::KubeApiClient client(api.start({{"objects", {{"/api/v1/namespaces/shop/pods/web-1", apiPod()}}}}));
  auto lookup = kubernetesPodMetadata(client, "node1");
  auto found = lookup("shop", "web-1", "uid-1");
  ASSERT_TRUE(found) << found.error().message();
  EXPECT_EQ(found->serviceAccount, "web");
  auto missing = lookup("shop", "web-2", "");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message().find("not in the Kubernetes API"), std::string::npos) << missing.error().message();
  // Names come from CNI input: a path is never built from one that is not a Kubernetes name.
  auto hostile = lookup("shop", "web-1/../../secrets", "");
  ASSERT_FALSE(hostile);
  EXPECT_NE(hostile.error().message().find("is not a Kubernetes pod name"), std::string::npos);
  for (const auto& r : api.requests()) EXPECT_EQ(r["path"].get<std::string>().find(".."), std::string::npos);
}

}  // namespace
}  // namespace sluice::agent
