// VirtualService `mirror`, end to end: node0's tunnel routes every request to web-v1 and sends
// a copy of a share of them to web-v2 (both on node1, behind HBONE), which logs each request
// it reads (tests/interop/http_echo_server.py --request-log). The mirror gets its share (30%
// of 3,000 within 3 points, over HTTP/1.1 with `mirror` and h2c with `mirrors`) with "-shadow" appended to the authority
// and the request body, the client gets only web-v1's answers, and a mirror that never
// answers slows nothing: its copies are bounded in flight (the rest dropped and counted) and
// given up at the route's timeout.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "support/l7_fixture.h"
#include "support/privileged.h"

namespace sluice {
namespace {

using nlohmann::json;
constexpr const char* kVip = sim::kCanaryVip;

// Every request to web-v1; `percent` of them mirrored to web-v2 (`extra` adds route fields).
std::string mirrorRoutes(int percent, const std::string& extra = "") {
  return "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: web, namespace: shop}\n"
         "spec:\n  hosts: [web]\n  http:\n  - name: all\n    route: [{destination: {host: web, subset: v1}}]\n"
         "    mirror: {host: web, subset: v2}\n    mirrorPercentage: {value: " + std::to_string(percent) + "}\n" + extra;
}

// The same with Istio's newer `mirrors` list.
std::string mirrorsRoutes(int percent) {
  return "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: web, namespace: shop}\n"
         "spec:\n  hosts: [web]\n  http:\n  - name: all\n    route: [{destination: {host: web, subset: v1}}]\n"
         "    mirrors: [{destination: {host: web, subset: v2}, percentage: {value: " + std::to_string(percent) + "}}]\n";
}

class MirrorE2eTest : public L7MeshTest {
 protected:
  void SetUp() override {
    SLUICE_REQUIRE_PRIVILEGES();
    std::filesystem::remove(mirrorLog_);
    appExtraArgs_["web-v2"] = {"--request-log", mirrorLog_};
  }
  void TearDown() override {
    L7MeshTest::TearDown();
    std::filesystem::remove(mirrorLog_);
  }
  void start(const std::string& portName, const std::string& routes) {
    startL7Mesh("tests/interop/http_echo_server.py", portName, routes, [&] {
      auto dump = nodes_[0]->configDump();
      if (!dump) return false;
      const json& service = (*dump)["services"][std::string(kVip) + ":80"];
      return service.contains("httpRoutes") && service["httpRoutes"][0].contains("mirrors");
    });
  }
  // What web-v2 has read so far, one object per request.
  std::vector<json> mirrored() {
    std::vector<json> lines;
    std::ifstream in(mirrorLog_);
    for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line, nullptr, false));
    return lines;
  }
  double mirrorCount(const std::string& outcome) {
    auto n = nodes_[0]->metricSum("sluice_mirror_requests_total", {{"destination_service", "shop/web"}, {"outcome", outcome}});
    return n.value_or(-1);
  }
  // Waits until web-v2 has read as many copies as node0 sent (copies are fire and forget:
  // the last ones may still be on their way when the client is done).
  size_t settledMirrorCount() {
    waitFor([&] { return static_cast<double>(mirrored().size()) == mirrorCount("sent"); }, std::chrono::seconds(10));
    return mirrored().size();
  }

  std::string mirrorLog_ = ::testing::TempDir() + "sluice-mirror-" + std::to_string(::getpid()) + ".log";
};

TEST_F(MirrorE2eTest, AMirrorGetsItsShareOfHttp1RequestsWithAShadowAuthority) {
  ASSERT_NO_FATAL_FAILURE(start("http", mirrorRoutes(30)));
  json result = clientJson("tests/interop/http_keepalive_client.py", {kVip, "80", "3000", "--path", "/mirrored"});
  EXPECT_EQ(result["pods"].value("web-v1", 0), 3000) << "the client gets only the primary's answers: " << result.dump();
  size_t copies = settledMirrorCount();
  EXPECT_GE(copies, 810u) << "30% of 3,000 is 900";
  EXPECT_LE(copies, 990u);
  EXPECT_EQ(mirrorCount("sent"), static_cast<double>(copies));
  EXPECT_EQ(mirrorCount("dropped"), 0);
  EXPECT_EQ(mirrorCount("failed"), 0);
  for (const json& copy : mirrored()) {
    ASSERT_EQ(copy.value("authority", ""), std::string(kVip) + "-shadow") << copy.dump();
    ASSERT_EQ(copy.value("path", ""), "/mirrored");
  }
  // A body goes with its copy (mirrorPercentage picks per request: send until one is copied).
  std::string body(3000, 'x');
  size_t before = mirrored().size();
  for (int i = 0; i < 40 && mirrored().size() == before; ++i) {
    RunOutput out = inClient({"curl", "-sS", "-X", "PUT", "--data-binary", body, "http://" + std::string(kVip) + "/put"});
    ASSERT_NE(out.out.find("\"body_length\": 3000"), std::string::npos) << out.out << out.err;
    settledMirrorCount();
  }
  ASSERT_GT(mirrored().size(), before) << "no PUT was mirrored in 40";
  json copy = mirrored().back();
  EXPECT_EQ(copy.value("method", ""), "PUT");
  EXPECT_EQ(copy.value("body_length", 0), 3000);
  // The mirrored requests are not requests of the client's (istio_requests_total counts the
  // primary's only).
  EXPECT_EQ(requestsTotal({{"destination_workload", "web-v2"}}), 0);
}

TEST_F(MirrorE2eTest, AMirrorGetsItsShareOfH2cRequests) {
  ASSERT_NO_FATAL_FAILURE(start("http2", mirrorsRoutes(30)));
  RunOutput load = inClient({"h2load", "-n", "3000", "-c", "1", "-m", "10", "http://" + std::string(kVip) + "/h2"});
  EXPECT_NE(load.out.find("status codes: 3000 2xx"), std::string::npos) << load.out << load.err;
  size_t copies = settledMirrorCount();
  EXPECT_GE(copies, 810u);
  EXPECT_LE(copies, 990u);
  EXPECT_EQ(mirrorCount("failed"), 0);
  for (const json& copy : mirrored()) ASSERT_EQ(copy.value("authority", ""), std::string(kVip) + "-shadow") << copy.dump();
  // A body over HTTP/2 goes with its copy.
  std::string body(5000, 'y');
  size_t before = mirrored().size();
  for (int i = 0; i < 40 && mirrored().size() == before; ++i) {
    RunOutput out = inClient({"curl", "-sS", "--http2-prior-knowledge", "-X", "POST", "--data-binary", body,
                              "http://" + std::string(kVip) + "/post"});
    ASSERT_NE(out.out.find("\"body_length\": 5000"), std::string::npos) << out.out << out.err;
    settledMirrorCount();
  }
  ASSERT_GT(mirrored().size(), before) << "no POST was mirrored in 40";
  EXPECT_EQ(mirrored().back().value("body_length", 0), 5000);
}

TEST_F(MirrorE2eTest, AMirrorThatNeverAnswersSlowsNothingAndIsBounded) {
  // web-v2 reads each request and answers only a minute later: every copy hangs until the
  // route's 3 s timeout gives it up.
  appExtraArgs_["web-v2"].insert(appExtraArgs_["web-v2"].end(), {"--delay-ms", "60000"});
  ASSERT_NO_FATAL_FAILURE(start("http", mirrorRoutes(100, "    timeout: 3s\n")));
  auto began = std::chrono::steady_clock::now();
  json result = clientJson("tests/interop/http_keepalive_client.py", {kVip, "80", "1000"});
  auto took = std::chrono::steady_clock::now() - began;
  EXPECT_EQ(result["pods"].value("web-v1", 0), 1000) << result.dump();
  // Waiting for a copy's answer would take 3 s per request; none is waited for.
  EXPECT_LT(took, std::chrono::seconds(60)) << "the primary requests waited for their mirror";
  // At most 128 copies in flight per worker of node0 (none answers; each goes at its 3 s): the
  // rest are dropped, and counted.
  double sent = mirrorCount("sent"), dropped = mirrorCount("dropped");
  EXPECT_EQ(sent + dropped, 1000);
  EXPECT_GT(dropped, 0);
  EXPECT_GE(sent, 128);
  // Each is given up at the route's timeout: nothing stays behind.
  EXPECT_TRUE(waitFor([&] {
    auto active = nodes_[0]->metricSum("sluice_mirror_requests_active", {{"destination_service", "shop/web"}});
    return active && *active == 0;
  }, std::chrono::seconds(15))) << "copies still in flight after their timeout";
  EXPECT_EQ(mirrorCount("failed"), sent) << "a copy that never answered is a failed one";
}

}  // namespace
}  // namespace sluice
