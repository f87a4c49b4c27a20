// Kubernetes API objects into the loader's documents: which pods become Workloads, how
// Services are trimmed, what is refused and why.
#include "kubernetes/kube_objects.h"

#include <gtest/gtest.h>

namespace sluice::controller::kube {
namespace {

using nlohmann::json;

json runningPod() {
  return json::parse(R"({"apiVersion":"v1","kind":"Pod",
    "metadata":{"name":"web-1","namespace":"shop","uid":"u-1","labels":{"app":"web"},"resourceVersion":"5",
                "managedFields":[{"manager":"kubelet"}]},
    "spec":{"nodeName":"node1","serviceAccountName":"web","containers":[{"name":"app","image":"web:1"}]},
    "status":{"phase":"Running","podIP":"10.0.0.5","podIPs":[{"ip":"10.0.0.5"},{"ip":"fd00::5"}]}})");
}

TEST(KubeObjects, RunningPodBecomesAWorkload) {
  auto doc = loaderDocument(runningPod());
  ASSERT_TRUE(doc) << doc.error().message();
  ASSERT_TRUE(*doc);
  EXPECT_EQ(**doc, json::parse(R"({"apiVersion":"sluice.io/v1alpha1","kind":"Workload",
    "metadata":{"name":"web-1","namespace":"shop","uid":"u-1","labels":{"app":"web"}},
    "spec":{"addresses":["10.0.0.5","fd00::5"],"serviceAccount":"web","node":"node1"}})"));
}

struct PodCase {
  const char* name;
  const char* patch;  // JSON merge patch applied to runningPod()
  bool kept;
};

TEST(KubeObjects, PodsTheMeshDoesNotCarryAreLeftOut) {
  const PodCase cases[] = {
      {"running", "{}", true},
      {"pending without an address", R"({"status":{"phase":"Pending","podIP":null,"podIPs":null}})", false},
      {"succeeded", R"({"status":{"phase":"Succeeded"}})", false},
      {"failed", R"({"status":{"phase":"Failed"}})", false},
      {"host network", R"({"spec":{"hostNetwork":true}})", false},
      {"only podIP", R"({"status":{"podIPs":null}})", true},
      {"default service account", R"({"spec":{"serviceAccountName":null}})", true},
  };
  for (const auto& c : cases) {
    json pod = runningPod();
    pod.merge_patch(json::parse(c.patch));
    auto doc = loaderDocument(pod);
    ASSERT_TRUE(doc) << c.name << ": " << doc.error().message();
    EXPECT_EQ(doc->has_value(), c.kept) << c.name;
  }
  json unscheduled = runningPod();
  unscheduled["spec"].erase("nodeName");
  auto refused = loaderDocument(unscheduled);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("no spec.nodeName"), std::string::npos);
}

json service() {
  return json::parse(R"({"apiVersion":"v1","kind":"Service",
    "metadata":{"name":"web","namespace":"shop","annotations":{"sluice.io/mirror-safe":"true"}},
    "spec":{"type":"LoadBalancer","clusterIP":"10.96.0.10","clusterIPs":["10.96.0.10"],"selector":{"app":"web"},
            "sessionAffinity":"None","ipFamilies":["IPv4"],"internalTrafficPolicy":"Cluster",
            "ports":[{"name":"http","port":80,"targetPort":8080,"protocol":"TCP","nodePort":31000}]},
    "status":{"loadBalancer":{}}})");
}

TEST(KubeObjects, ServicesKeepOnlyWhatTheMeshReads) {
  auto doc = loaderDocument(service());
  ASSERT_TRUE(doc) << doc.error().message();
  EXPECT_EQ(**doc, json::parse(R"({"apiVersion":"v1","kind":"Service",
    "metadata":{"name":"web","namespace":"shop","annotations":{"sluice.io/mirror-safe":"true"}},
    "spec":{"clusterIP":"10.96.0.10","clusterIPs":["10.96.0.10"],"selector":{"app":"web"},
            "ports":[{"name":"http","port":80,"targetPort":8080,"protocol":"TCP"}]}})"));
}

struct ServiceRefusal {
  const char* name;
  const char* patch;
  const char* error;
};

TEST(KubeObjects, ServicesTheMeshCannotTakeAreRefusedNamingWhy) {
  const ServiceRefusal cases[] = {
      {"headless", R"({"spec":{"clusterIP":"None"}})", "headless"},
      {"external name", R"({"spec":{"type":"ExternalName"}})", "ExternalName"},
      {"named target port", R"({"spec":{"ports":[{"port":80,"targetPort":"http-web"}]}})", "names a container port"},
  };
  for (const auto& c : cases) {
    json s = service();
    s.merge_patch(json::parse(c.patch));
    auto doc = loaderDocument(s);
    ASSERT_FALSE(doc) << c.name;
    EXPECT_NE(doc.error().message().find(c.error), std::string::npos) << c.name << ": " << doc.error().message();
  }
}

TEST(KubeObjects, IstioObjectsKeepTheirSpecAndLoseServerFields) {
  auto doc = loaderDocument(json::parse(R"({"apiVersion":"networking.istio.io/v1","kind":"VirtualService",
    "metadata":{"name":"web","namespace":"shop","generation":3,"resourceVersion":"9","creationTimestamp":"x"},
    "spec":{"hosts":["web"]},"status":{"observedGeneration":3}})"));
  ASSERT_TRUE(doc);
  EXPECT_EQ(**doc, json::parse(R"({"apiVersion":"networking.istio.io/v1","kind":"VirtualService",
    "metadata":{"name":"web","namespace":"shop"},"spec":{"hosts":["web"]}})"));
}

}  // namespace
}  // namespace sluice::controller::kube
