#include "daemon/pod_record.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace sluice::agent {
namespace {

TEST(PodRecord, SurvivesTheStateFile) {
  std::string dir = ::testing::TempDir() + "/pod_record_test_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  PodRecord pod;
  pod.uid = "u1";
  pod.name = "web";
  pod.ns = "shop";
  pod.serviceAccount = "api";
  pod.containerId = "c1";
  pod.netnsPath = "/run/netns/x";
  pod.netnsCookie = 0xfeedfacecafebeefull;
  pod.addresses = {"10.244.0.2"};
  pod.labels = {{"app", "web"}};
  ASSERT_TRUE(savePods(dir + "/pods.json", {pod}));
  auto loaded = loadPods(dir + "/pods.json");
  ASSERT_TRUE(loaded) << loaded.error().message();
  ASSERT_EQ(loaded->size(), 1u);
  EXPECT_EQ(toJson((*loaded)[0]), toJson(pod));
  EXPECT_FALSE(std::filesystem::exists(dir + "/pods.json.tmp"));
  std::filesystem::remove_all(dir);
}

TEST(PodRecord, MissingFileIsEmptyCorruptFileIsAnError) {
  auto none = loadPods("/nonexistent/pods.json");
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
  std::string path = ::testing::TempDir() + "/corrupt_" + std::to_string(::getpid()) + ".json";
  for (const char* text : {"{", R"({"version":2,"pods":[]})", R"({"version":1,"pods":[{"uid":1}]})"}) {
    std::ofstream(path) << text;
    auto loaded = loadPods(path);
    EXPECT_FALSE(loaded) << text;
  }
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace sluice::agent
