// The controller's Kubernetes source end to end against the fake API server: pods, Services and
// Istio kinds listed and watched become one configuration; objects the mesh cannot take are
// left out and named while the rest is served; a new pod reaches its Service's endpoints; and
// nothing is published before every kind has been listed.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "support/fake_kube_api.h"
#include "kubernetes/kube_config_source.h"

namespace sluice::controller::kube {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

json pod(const std::string& name, const std::string& ip, const std::string& rv, const std::string& phase = "Running") {
  return {{"metadata", {{"name", name}, {"namespace", "shop"}, {"uid", "uid-" + name}, {"labels", {{"app", "web"}}}, {"resourceVersion", rv}}},
          {"spec", {{"nodeName", "node1"}, {"serviceAccountName", "web"}}},
          {"status", {{"phase", phase}, {"podIPs", {{{"ip", ip}}}}}}};
}

json list(const std::string& rv, json items) { return json::array({{{"resourceVersion", rv}, {"items", std::move(items)}}}); }

class KubeConfigSourceTest : public ::testing::Test {
 protected:
  void TearDown() override { source_.reset(); }

  void start(const json& resources) {
    WatcherOptions options;
    options.initialBackoff = 100ms;
    options.maxBackoff = 1s;
    source_ = std::make_unique<KubernetesSource>(api_.start({{"resources", resources}}), store_, options);
    source_->start();
  }

  template <typename Pred>
  bool waitFor(Pred done) {
    return sluice::kube::testing::waitUntil(done);
  }

  const config::v1::Service* service(const std::string& name) {
    for (const auto* s : store_.current()->services()) {
      if (s->name() == name) return s;
    }
    return nullptr;
  }

  sluice::kube::testing::FakeKubeApi api_;
  ConfigStore store_;
  std::unique_ptr<KubernetesSource> source_;
};

TEST_F(KubeConfigSourceTest, ClusterObjectsBecomeOneConfigurationAndBadOnesAreLeftOut) {
  json services = list("20", {{{"metadata", {{"name", "web"}, {"namespace", "shop"}, {"resourceVersion", "18"}}},
                               {"spec", {{"clusterIP", "10.96.0.10"}, {"selector", {{"app", "web"}}}, {"sessionAffinity", "None"},
                                         {"ports", {{{"name", "http"}, {"port", 80}, {"targetPort", 8080}}}}}}},
                              {{"metadata", {{"name", "db"}, {"namespace", "shop"}, {"resourceVersion", "19"}}},
                               {"spec", {{"clusterIP", "None"}, {"ports", {{{"port", 5432}}}}}}}});
  json virtualServices = list("30", {{{"metadata", {{"name", "web"}, {"namespace", "shop"}, {"resourceVersion", "28"}}},
                                      {"spec", {{"hosts", {"web"}}, {"http", {{{"route", {{{"destination", {{"host", "web"}}}}}}}}}}}},
                                     {{"metadata", {{"name", "odd"}, {"namespace", "shop"}, {"resourceVersion", "29"}}},
                                      {"spec", {{"hosts", {"web"}}, {"exportTo", {"."}}}}}});
  start({{"/api/v1/pods",
          {{"lists", list("10", {pod("web-1", "10.0.0.5", "8"), pod("done-1", "10.0.0.9", "9", "Succeeded")})},
           {"watches", {{{"lines", {json{{"type", "ADDED"}, {"object", pod("web-2", "10.0.0.6", "11")}}.dump()}}, {"end", "hold"}}}}}},
         {"/api/v1/services", {{"lists", services}, {"watches", json::array()}}},
         {"/apis/networking.istio.io/v1/virtualservices", {{"lists", virtualServices}, {"watches", json::array()}}}});
  // The watch adds web-2 after the first configuration: wait for both endpoints.
  ASSERT_TRUE(waitFor([&] { return service("web") != nullptr && service("web")->endpoints_size() == 2; }))
      << store_.lastError();
  auto config = store_.current();
  EXPECT_EQ(config->workloads().size(), 2u) << "the Succeeded pod is not a workload";
  EXPECT_EQ(service("db"), nullptr);
  EXPECT_TRUE(config->resources.contains("VirtualService/shop/web"));
  EXPECT_FALSE(config->resources.contains("VirtualService/shop/odd"));
  std::string problems = store_.lastError();
  EXPECT_NE(problems.find("Service shop/db: headless Services"), std::string::npos) << problems;
  EXPECT_NE(problems.find("exportTo"), std::string::npos) << problems;
  auto status = source_->status();
  EXPECT_EQ(status["refused"].size(), 2u) << status.dump(2);
  for (const auto& kind : status["kinds"]) EXPECT_TRUE(kind["synced"].get<bool>()) << kind.dump();
}

TEST_F(KubeConfigSourceTest, NothingIsPublishedBeforeEveryKindIsListed) {
  // Services fail to list (500): pods alone must not become a configuration.
  start({{"/api/v1/pods", {{"lists", list("10", {pod("web-1", "10.0.0.5", "8")})}, {"watches", json::array()}}},
         {"/api/v1/services", {{"lists", json::array({{{"status", 500}}})}, {"watches", json::array()}}}});
  ASSERT_TRUE(waitFor([&] { return source_->status()["kinds"][1]["failures"].get<int>() >= 2; }));
  uint64_t generation = 0;
  store_.current(&generation);
  EXPECT_EQ(generation, 0u);
  EXPECT_TRUE(store_.current()->resources.empty());
}

}  // namespace
}  // namespace sluice::controller::kube
