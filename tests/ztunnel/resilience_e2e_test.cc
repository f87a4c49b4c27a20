// Resilience in the client's tunnel, end to end (node0 decides, web-v1 and web-v2 on node1
// behind HBONE). Outlier detection: an HTTP endpoint that answers 503 to everything is ejected
// after five of them, so 10,000 requests on one keep-alive connection see five failures; a TCP
// service with a dead endpoint (its app gone: the destination tunnel refuses the CONNECT)
// stops getting new connections after five failed ones, and gets them again once its ejection
// time is over. Fault injection (abort share, delay, gRPC abort) and route timeouts, over
// HTTP/1.1 and h2c, measured with independent clients (python's http.client, curl). Circuit
// breaking (connectionPool): what exceeds a destination's requests in flight, its connections
// or its pending requests is answered 503 UO (h2load's status counts, the app's own count of
// requests at once), an upstream connection carries maxRequestsPerConnection requests, and a
// TCP service refuses the connection over its maxConnections. perTryTimeout: a slow try is cut
// and the request tried elsewhere. A LocalRateLimit answers 429 (gRPC: RESOURCE_EXHAUSTED)
// beyond its token bucket, which refills. A destination whose tunnel never answers a CONNECT
// is given up at the DestinationRule's connectTimeout. A request body up to 64 KiB is sent
// again with its retry. Requests waiting for their connection beyond http1MaxPendingRequests
// are answered 503 UO at once while the admitted ones succeed; a 100 req/s LocalRateLimit
// passes 100 ± 5 a second of 1,000 offered (h2load --rps).
#include <gtest/gtest.h>
#include <signal.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <regex>
#include <thread>

#include "support/l7_fixture.h"
#include "support/privileged.h"

namespace sluice {
namespace {

using nlohmann::json;
constexpr const char* kVip = sim::kCanaryVip;

// Every request to the service itself (both endpoints), round robin.
const std::string kRoutes = everyRequestTo("{host: web}");

// A LocalRateLimit on Service web with `tokenBucket` (a YAML flow mapping), after a "---".
std::string webRateLimit(const std::string& tokenBucket) {
  return "---\napiVersion: sluice.io/v1alpha1\nkind: LocalRateLimit\nmetadata: {name: web-limit, namespace: shop}\n"
         "spec: {host: web, tokenBucket: " + tokenBucket + "}\n";
}

// node1's tunnel stopped (SIGSTOP): its HBONE connection stays open and CONNECTs on it are
// never answered, the case only a deadline ends. Continued (SIGCONT) when the scope ends.
class StoppedTunnel {
 public:
  explicit StoppedTunnel(pid_t pid) : pid_(pid) { stopped_ = ::kill(pid_, SIGSTOP) == 0; }
  ~StoppedTunnel() { resume(); }
  void resume() {
    if (stopped_) ::kill(pid_, SIGCONT);
    stopped_ = false;
  }
  bool stopped() const { return stopped_; }

 private:
  pid_t pid_;
  bool stopped_ = false;
};

class ResilienceE2eTest : public L7MeshTest {
 protected:
  void SetUp() override { SLUICE_REQUIRE_PRIVILEGES(); }

  // node0's view of the pod's host ("shop/<pod>") in /config_dump (null when not remembered).
  json outlierEntry(const std::string& pod) {
    auto dump = nodes_[0]->configDump();
    if (!dump || !dump->contains("outliers")) return nullptr;
    for (const auto& e : (*dump)["outliers"]["endpoints"]) {
      if (e.value("host", "") == "shop/" + pod) return e;
    }
    return nullptr;
  }
  void expectConnectTimeout(const std::string& port);
  bool servicePolicyApplied(const std::string& field) {
    auto dump = nodes_[0]->configDump();
    return dump && dump->contains("services") && (*dump)["services"].contains(std::string(kVip) + ":80") &&
           (*dump)["services"][std::string(kVip) + ":80"].contains(field);
  }
  bool outlierPolicyApplied() {
    auto dump = nodes_[0]->configDump();
    return dump && dump->contains("services") && (*dump)["services"].contains(std::string(kVip) + ":80") &&
           (*dump)["services"][std::string(kVip) + ":80"].contains("outlierDetection");
  }
};

TEST_F(ResilienceE2eTest, AnHttpEndpointAnswering503IsEjectedAfterFiveFailures) {
  appExtraArgs_["web-v2"] = {"--status", "503"};
  ASSERT_NO_FATAL_FAILURE(startL7Mesh("tests/interop/http_echo_server.py", "http", kRoutes,
                                      [&] { return outlierPolicyApplied(); },
                                      "{outlierDetection: {consecutive5xxErrors: 5, baseEjectionTime: 60s}}"));
  // h2c first (h2load: 200 requests, 10 streams at a time): five 503s in a row from web-v2
  // eject it (Envoy's count, shared by node0's workers and by both protocols), and each of
  // them is retried on web-v1 (Istio's default retries: 503), so every request succeeds.
  RunOutput load = inClient({"h2load", "-n", "200", "-c", "1", "-m", "10", "http://" + std::string(kVip) + "/"});
  EXPECT_NE(load.out.find("status codes: 200 2xx"), std::string::npos) << load.out << load.err;
  // Then 10,000 HTTP/1.1 requests on one connection: web-v2 stays out for its 60 s.
  json result = clientJson("tests/interop/http_keepalive_client.py", {kVip, "80", "10000"});
  EXPECT_EQ(result["statuses"].value("200", 0), 10000) << result.dump();
  auto retried = nodes_[0]->metricSum("sluice_retries_total", {{"destination_service", "shop/web"}});
  ASSERT_TRUE(retried) << retried.error().message();
  // Five 503s eject it; streams already sent to it when the fifth came back (h2load keeps 10
  // in flight) add their own 503s, each retried too.
  EXPECT_GE(*retried, 5);
  EXPECT_LE(*retried, 15);
  json entry = outlierEntry("web-v2");
  ASSERT_TRUE(entry.is_object()) << "node0 does not report web-v2 in /config_dump";
  EXPECT_TRUE(entry.value("ejected", false)) << entry.dump();
  EXPECT_EQ(entry.value("ejections", 0), 1);
  // Within its 60 s (how much is left depends on how fast the 10,000 requests went).
  EXPECT_GT(entry.value("ejectedForMs", 0), 0);
  EXPECT_LE(entry.value("ejectedForMs", 0), 60000);
  EXPECT_EQ(requestsTotal({{"destination_workload", "web-v2"}}), 0) << "a retried try is not a request of its own";
  // Every retry ended with its request: none is still counted in flight.
  auto retrying = nodes_[0]->metricSum("sluice_retries_in_flight", {{"destination_service", "shop/web"}});
  ASSERT_TRUE(retrying) << retrying.error().message();
  EXPECT_EQ(*retrying, 0);
  auto ejections = nodes_[0]->metricSum("sluice_outlier_ejected_endpoints", {{"destination_service", "shop/web"}});
  ASSERT_TRUE(ejections) << ejections.error().message();
  EXPECT_EQ(*ejections, 1);
  // The operator's view on node0: sluicectl reads the tunnel's admin endpoint.
  auto table = nodes_[0]->sluicectl({"destinations"});
  ASSERT_TRUE(table) << table.error().message();
  EXPECT_EQ(table->exitCode, 0) << table->err;
  EXPECT_TRUE(std::regex_search(table->out, std::regex(R"(shop/web +shop/web-v2 +yes)"))) << table->out;
  auto asJson = nodes_[0]->sluicectl({"-o", "json", "destinations"});
  ASSERT_TRUE(asJson) << asJson.error().message();
  json view = json::parse(asJson->out, nullptr, false);
  ASSERT_TRUE(view.is_object()) << asJson->out << asJson->err;
  int ejectedInView = 0;
  for (const auto& e : view["outliers"]["endpoints"]) ejectedInView += e.value("host", "") == "shop/web-v2" && e.value("ejected", false);
  EXPECT_EQ(ejectedInView, 1) << view.dump();
}

TEST_F(ResilienceE2eTest, ATcpServiceStopsConnectingToADeadEndpointAndRetriesItLater) {
  ASSERT_NO_FATAL_FAILURE(startL7Mesh("tests/interop/http_echo_server.py", "tcp", kRoutes,
                                      [&] { return outlierPolicyApplied(); },
                                      "{outlierDetection: {consecutive5xxErrors: 5, baseEjectionTime: 4s, "
                                      "maxEjectionPercent: 50}}"));
  // web-v2's app goes away: node1's tunnel answers its CONNECTs 503 (connection refused).
  ASSERT_TRUE(apps_[1].stop(std::chrono::seconds(2)));
  // One new connection per request (curl), relayed at L4: a failure is a connection that
  // carried no answer.
  auto connectOnce = [&] {
    RunOutput out = inClient({"curl", "-sS", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}",
                              "http://" + std::string(kVip) + "/"});
    return out.out == "200";
  };
  int failures = 0, attempts = 0;
  for (; failures < 5 && attempts < 60; ++attempts) failures += connectOnce() ? 0 : 1;
  ASSERT_EQ(failures, 5) << "after " << attempts << " connections";
  json entry = outlierEntry("web-v2");
  ASSERT_TRUE(entry.is_object());
  EXPECT_TRUE(entry.value("ejected", false)) << entry.dump();
  // Ejected: every new connection reaches web-v1.
  for (int i = 0; i < 15; ++i) EXPECT_TRUE(connectOnce()) << "connection " << i << " after the ejection";
  // Its 4 s over, web-v2 takes connections again (and fails them: 5 more eject it for 8 s).
  ASSERT_TRUE(waitFor([&] { return !outlierEntry("web-v2").value("ejected", true); }, std::chrono::seconds(10)));
  int again = 0;
  for (int i = 0; i < 30 && again == 0; ++i) again += connectOnce() ? 0 : 1;
  EXPECT_EQ(again, 1) << "web-v2 never got a connection after its ejection time";
  auto total = nodes_[0]->metricSum("sluice_outlier_ejections_total", {});
  ASSERT_TRUE(total) << total.error().message();
  EXPECT_GE(*total, 1);
}

TEST_F(ResilienceE2eTest, RetriesStayWithinTheirBudgetWhenEveryEndpointFailsHalfTheTime) {
  appExtraArgs_["web-v1"] = {"--fail-percent", "50"};
  appExtraArgs_["web-v2"] = {"--fail-percent", "50"};
  std::string routes = std::string(kRoutes) + "    retries: {attempts: 2, retryOn: 5xx}\n";
  ASSERT_NO_FATAL_FAILURE(startL7Mesh("tests/interop/http_echo_server.py", "http", routes, [&] {
    auto dump = nodes_[0]->configDump();
    return dump && (*dump)["services"].contains(std::string(kVip) + ":80");
  }));
  auto start = std::chrono::steady_clock::now();
  json result = clientJson("tests/interop/http_keepalive_client.py", {kVip, "80", "3000"});
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  int ok = result["statuses"].value("200", 0), failed = result["statuses"].value("503", 0);
  EXPECT_EQ(ok + failed, 3000) << result.dump();
  auto retried = nodes_[0]->metricSum("sluice_retries_total", {{"destination_service", "shop/web"}});
  auto denied = nodes_[0]->metricSum("sluice_retry_budget_denied_total", {{"destination_service", "shop/web"}});
  ASSERT_TRUE(retried && denied);
  // Without a budget ~0.75 retries per request (2,250); the budget allows 20% of the requests of
  // the last 10 s plus 10 per second of it: over the run, at most 20% of 3,000 plus 10 per
  // second of the run and of one more window.
  EXPECT_LE(*retried, 0.2 * 3000 + 10 * (seconds + 10)) << "retries beyond the budget in " << seconds << " s: a retry storm";
  EXPECT_GE(*retried, 300) << "retries did not happen";
  EXPECT_GE(*denied, 500) << "the budget never said no";
  // Each retry turned about half of its failures into successes: more than the 50% alone.
  EXPECT_GE(ok, 1500 + *retried / 2 - 150) << result.dump();
}

const char* kFaultRoutes = R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: [web]
  http:
  - name: delayed
    match: [{uri: {prefix: /delayed}}]
    route: [{destination: {host: web, subset: v1}}]
    fault: {delay: {fixedDelay: 400ms, percentage: {value: 100}}}
  - name: aborted
    match: [{uri: {prefix: /aborted}}]
    route: [{destination: {host: web, subset: v1}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 30}}}
  - name: grpc-abort
    match: [{uri: {prefix: /grpc-abort}}]
    route: [{destination: {host: web, subset: v1}}]
    fault: {abort: {grpcStatus: UNAVAILABLE}}
  - name: slow
    match: [{uri: {prefix: /slow}}]
    route: [{destination: {host: web, subset: v1}}]
    timeout: 300ms
  - name: all
    route: [{destination: {host: web}}]
)";

TEST_F(ResilienceE2eTest, FaultsAbortTheirShareDelayAndRouteTimeoutsAnswer504) {
  ASSERT_NO_FATAL_FAILURE(startL7Mesh("tests/interop/http_echo_server.py", "http", kFaultRoutes, [&] {
    RunOutput out = inClient({"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "http://" + std::string(kVip) + "/slow?ms=1000"});
    return out.out == "504";
  }));
  std::string base = "http://" + std::string(kVip);
  // Abort at 30%: 10,000 requests on one connection, within 2 points.
  json aborted = clientJson("tests/interop/http_keepalive_client.py", {kVip, "80", "10000", "--path", "/aborted"});
  int failed = aborted["statuses"].value("503", 0);
  EXPECT_EQ(failed + aborted["statuses"].value("200", 0), 10000) << aborted.dump();
  EXPECT_GE(failed, 2800) << aborted.dump();
  EXPECT_LE(failed, 3200) << aborted.dump();
  EXPECT_EQ(requestsTotal({{"response_code", "503"}, {"response_flags", "FI"}}), failed);
  // A 400 ms delay, HTTP/1.1 and h2c: each request takes it (within 10%, plus the path's own time).
  for (bool h2 : {false, true}) {
    std::vector<double> times;
    for (int i = 0; i < 5; ++i) {
      std::vector<std::string> argv = {"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{time_total}"};
      if (h2) argv.push_back("--http2-prior-knowledge");
      argv.push_back(base + "/delayed");
      RunOutput out = inClient(argv);
      ASSERT_EQ(out.out.substr(0, 3), "200") << out.out << out.err;
      times.push_back(std::stod(out.out.substr(4)));
    }
    std::sort(times.begin(), times.end());
    EXPECT_GE(times.front(), 0.400) << (h2 ? "h2c" : "HTTP/1.1");
    EXPECT_LE(times[2], 0.440 + 0.030) << (h2 ? "h2c" : "HTTP/1.1") << ": median " << times[2];
  }
  EXPECT_EQ(requestsTotal({{"response_code", "200"}, {"response_flags", "DI"}}), 10);
  // A gRPC abort: a trailers-only answer carrying the route's grpc-status.
  RunOutput grpc = inClient({"curl", "-sS", "--http2-prior-knowledge", "-D", "-", "-o", "/dev/null", "-X", "POST", "-H",
                             "content-type: application/grpc", "-H", "te: trailers", base + "/grpc-abort"});
  EXPECT_NE(grpc.out.find("HTTP/2 200"), std::string::npos) << grpc.out << grpc.err;
  EXPECT_NE(grpc.out.find("grpc-status: 14"), std::string::npos) << grpc.out;
  // The route's 300 ms timeout: a server that takes 2 s gets the client a 504 (UT) at 300 ms;
  // one that takes 50 ms answers.
  for (bool h2 : {false, true}) {
    std::vector<std::string> argv = {"curl", "-sS", "-w", " %{http_code} %{time_total}"};
    if (h2) argv.push_back("--http2-prior-knowledge");
    argv.push_back(base + "/slow?ms=2000");
    RunOutput out = inClient(argv);
    EXPECT_EQ(out.out.rfind("upstream request timeout 504 ", 0), 0u) << out.out << out.err;
    double seconds = std::stod(out.out.substr(out.out.rfind(' ') + 1));
    EXPECT_GE(seconds, 0.300);
    EXPECT_LT(seconds, 0.800);
    argv.back() = base + "/slow?ms=50";
    EXPECT_EQ(inClient(argv).out.substr(0, 1), "{");
  }
  EXPECT_GE(requestsTotal({{"response_code", "504"}, {"response_flags", "UT"}}), 2);
}

TEST_F(ResilienceE2eTest, ASlowTryIsCutAtItsPerTryTimeoutAndTriedElsewhere) {
  appExtraArgs_["web-v2"] = {"--delay-ms", "3000"};  // every answer of web-v2 takes 3 s
  std::string routes = kRoutes + "    retries: {attempts: 2, perTryTimeout: 200ms, retryOn: gateway-error}\n";
  std::string base = "http://" + std::string(kVip);
  auto timed = [&](const std::string& url, bool h2) {
    std::vector<std::string> argv = {"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{time_total}"};
    if (h2) argv.push_back("--http2-prior-knowledge");
    argv.push_back(url);
    RunOutput out = inClient(argv);
    return std::pair{out.out.substr(0, 3), out.out.size() > 4 ? std::stod(out.out.substr(4)) : -1.0};
  };
  // In force once a request that is slow everywhere is cut short.
  ASSERT_NO_FATAL_FAILURE(startL7Mesh("tests/interop/http_echo_server.py", "http", routes,
                                      [&] { return timed(base + "/slow?ms=3000", false).first == "504"; }));
  // HTTP/1.1, 20 requests on one connection, round robin: each try on web-v2 is cut at 200 ms
  // (a 504 to retryOn) and the request goes to web-v1 instead.
  json result = clientJson("tests/interop/http_keepalive_client.py", {kVip, "80", "20"});
  EXPECT_EQ(result["statuses"].value("200", 0), 20) << result.dump();
  EXPECT_EQ(result["pods"].value("web-v1", 0), 20) << result.dump();
  // h2c, one request at a time: the same, each well before web-v2's 3 s.
  for (int i = 0; i < 6; ++i) {
    auto [code, seconds] = timed(base + "/", true);
    EXPECT_EQ(code, "200");
    EXPECT_LT(seconds, 1.5);
  }
  auto retried = nodes_[0]->metricSum("sluice_retries_total", {{"destination_service", "shop/web"}});
  ASSERT_TRUE(retried) << retried.error().message();
  EXPECT_GE(*retried, 5) << "round robin sent no try to web-v2";
  // Slow everywhere: three tries of 200 ms (and two backoffs), then 504 UT, long before 3 s.
  for (bool h2 : {false, true}) {
    auto [code, seconds] = timed(base + "/slow?ms=3000", h2);
    EXPECT_EQ(code, "504") << (h2 ? "h2c" : "HTTP/1.1");
    EXPECT_GE(seconds, 0.6);
    EXPECT_LT(seconds, 2.0);
  }
  EXPECT_GE(requestsTotal({{"response_code", "504"}, {"response_flags", "UT"}}), 2);
}

TEST_F(ResilienceE2eTest, ALocalRateLimitAnswers429BeyondItsBucketAndRefills) {
  std::string routes = kRoutes + webRateLimit("{maxTokens: 10, tokensPerFill: 10, fillInterval: 3s}");
  ASSERT_NO_FATAL_FAILURE(startL7Mesh("tests/interop/http_echo_server.py", "http", routes,
                                      [&] { return servicePolicyApplied("localRateLimit"); }));
  std::string url = "http://" + std::string(kVip) + "/";
  // An answer within the limit says so (Envoy's x-ratelimit-* headers).
  RunOutput first = inClient({"curl", "-sS", "-D", "-", "-o", "/dev/null", url});
  EXPECT_NE(first.out.find("HTTP/1.1 200"), std::string::npos) << first.out << first.err;
  EXPECT_NE(first.out.find("x-ratelimit-limit: 10"), std::string::npos) << first.out;
  // 30 requests on one connection, at once: the bucket's 10 (and 10 more if a fill came
  // meanwhile) pass, the rest are answered 429 by node0's tunnel.
  json burst = clientJson("tests/interop/http_keepalive_client.py", {kVip, "80", "30"});
  int ok = burst["statuses"].value("200", 0), limited = burst["statuses"].value("429", 0);
  EXPECT_EQ(ok + limited, 30) << burst.dump();
  EXPECT_GE(ok, 9) << burst.dump();
  EXPECT_LE(ok, 19) << burst.dump();
  EXPECT_GE(limited, 10) << burst.dump();
  // Once a fill came the bucket is full again: 10 pass, then a 429 with its headers, and a
  // gRPC call gets RESOURCE_EXHAUSTED.
  std::this_thread::sleep_for(std::chrono::milliseconds(3100));
  int passed = 0;
  std::string refused;
  for (int i = 0; i < 25 && refused.empty(); ++i) {
    RunOutput out = inClient({"curl", "-sS", "-D", "-", "-o", "/dev/null", url});
    if (out.out.find("HTTP/1.1 200") == 0) ++passed;
    if (out.out.find("HTTP/1.1 429") == 0) refused = out.out;
  }
  EXPECT_GE(passed, 10);
  EXPECT_LE(passed, 20);
  ASSERT_FALSE(refused.empty()) << "the bucket never ran out";
  EXPECT_NE(refused.find("x-ratelimit-limit: 10"), std::string::npos) << refused;
  EXPECT_NE(refused.find("x-ratelimit-remaining: 0"), std::string::npos) << refused;
  EXPECT_NE(refused.find("x-ratelimit-reset: "), std::string::npos) << refused;
  RunOutput grpc = inClient({"curl", "-sS", "--http2-prior-knowledge", "-D", "-", "-o", "/dev/null", "-X", "POST", "-H",
                             "content-type: application/grpc", "-H", "te: trailers", url + "pkg.Svc/Call"});
  EXPECT_NE(grpc.out.find("grpc-status: 8"), std::string::npos) << grpc.out << grpc.err;
  EXPECT_GE(requestsTotal({{"response_code", "429"}, {"response_flags", "RL"}}), limited + 1);
}

// With node1's tunnel stopped, a request to the service on a port named `port` ("http": L7,
// "tcp": L4) is given up after the DestinationRule's 2 s connectTimeout (the tick checks
// each second), long before curl's 20 s or the tunnel's own 10 s default.
void ResilienceE2eTest::expectConnectTimeout(const std::string& port) {
  ASSERT_NO_FATAL_FAILURE(startL7Mesh("tests/interop/http_echo_server.py", port, kRoutes + "    retries: {attempts: 0}\n",
                                      [&] { return servicePolicyApplied("connectionPool"); },
                                      "{connectionPool: {tcp: {connectTimeout: 2s}}}"));
  std::string url = "http://" + std::string(kVip) + "/";
  auto timed = [&] {
    RunOutput out = inClient({"curl", "-sS", "--max-time", "20", "-o", "/dev/null", "-w", "%{http_code} %{time_total}", url});
    return std::pair{out.out.substr(0, 3), out.out.size() > 4 ? std::stod(out.out.substr(4)) : -1.0};
  };
  EXPECT_EQ(timed().first, "200") << "the mesh works before node1's tunnel stops";
  {
    StoppedTunnel stopped(nodes_[1]->tunnelPid());
    ASSERT_TRUE(stopped.stopped());
    auto [code, seconds] = timed();
    EXPECT_EQ(code, port == "http" ? "503" : "000") << "HTTP answers 503 UF, TCP resets the connection";
    EXPECT_GE(seconds, 1.9);
    EXPECT_LT(seconds, 4.5);
  }
  auto timeouts = nodes_[0]->metricSum("sluice_tcp_connections_failed_total", {{"reason", "connect_timeout"}});
  ASSERT_TRUE(timeouts) << timeouts.error().message();
  EXPECT_GE(*timeouts, 1);
  EXPECT_TRUE(waitFor([&] { return timed().first == "200"; }, std::chrono::seconds(15))) << "node1 never served again";
}

TEST_F(ResilienceE2eTest, AnHttpDestinationThatNeverAnswersIsGivenUpAtTheConnectTimeout) {
  expectConnectTimeout("http");
}

TEST_F(ResilienceE2eTest, ATcpDestinationThatNeverAnswersIsGivenUpAtTheConnectTimeout) {
  expectConnectTimeout("tcp");
}

TEST_F(ResilienceE2eTest, ARequestBodyUpTo64KiBGoesAgainWithItsRetry) {
  appExtraArgs_["web-v2"] = {"--status", "503"};  // reads the whole body, then answers 503
  ASSERT_NO_FATAL_FAILURE(startL7Mesh("tests/interop/http_echo_server.py", "http", kRoutes, [&] {
    auto dump = nodes_[0]->configDump();
    return dump && (*dump)["services"].contains(std::string(kVip) + ":80");
  }));
  // PUT /bulk with a patterned body (the app checks every byte): Istio's default retries
  // take a 503 on an idempotent method to the other endpoint, body and all, over HTTP/1.1
  // and h2c alike.
  auto put = [&](int bytes, bool h2) {
    std::vector<std::string> args = {kVip, "80", "up", std::to_string(bytes)};
    if (h2) args.push_back("--h2");
    return clientJson("tests/interop/http_bulk.py", args);
  };
  for (bool h2 : {false, true}) {
    for (int i = 0; i < 12; ++i) {
      json r = put(40000, h2);
      EXPECT_TRUE(r.value("ok", false)) << (h2 ? "h2c " : "HTTP/1.1 ") << r.dump();
      EXPECT_EQ(r.value("pod", ""), "web-v1") << r.dump();
    }
  }
  auto retried = nodes_[0]->metricSum("sluice_retries_total", {{"destination_service", "shop/web"}});
  ASSERT_TRUE(retried) << retried.error().message();
  EXPECT_GE(*retried, 2) << "no request went to web-v2 first: nothing was retried";
  // A retried request is counted once in the access log (bytes_received: its head and body,
  // not every try's), over both protocols.
  int puts = 0;
  for (const json& line : accessLog("node0")) {
    if (line.value("method", "") != "PUT") continue;
    ++puts;
    EXPECT_GE(line.value("bytes_received", 0), 40000) << line.dump();
    EXPECT_LT(line.value("bytes_received", 0), 42000) << "counted per try: " << line.dump();
  }
  EXPECT_EQ(puts, 24);
  // Beyond 64 KiB the body is streamed and not kept: web-v2's 503 reaches the client.
  int refused = 0;
  for (bool h2 : {false, true}) {
    for (int i = 0; i < 12; ++i) {
      json r = put(100000, h2);
      if (r.value("status", 0) == 503) ++refused;
      else EXPECT_TRUE(r.value("ok", false)) << r.dump();
    }
  }
  EXPECT_GE(refused, 2) << "a body over 64 KiB was retried";
}

// h2load's "status codes: A 2xx, B 3xx, C 4xx, D 5xx" line: {2xx, 5xx}; {-1, -1} when absent.
std::pair<int, int> statusCounts(const std::string& out) {
  std::smatch m;
  if (!std::regex_search(out, m, std::regex(R"(status codes: (\d+) 2xx, \d+ 3xx, \d+ 4xx, (\d+) 5xx)"))) return {-1, -1};
  return {std::stoi(m[1]), std::stoi(m[2])};
}

// Everything to subset v2 (one pod, web-v2), whose breaker is "shop/web/v2".
const std::string kToV2 = everyRequestTo("{host: web, subset: v2}");

TEST_F(ResilienceE2eTest, RequestsBeyondTheDestinationsLimitAreAnswered503UO) {
  ASSERT_NO_FATAL_FAILURE(startL7Mesh("tests/interop/http_echo_server.py", "http", kToV2,
                                      [&] { return servicePolicyApplied("connectionPool"); },
                                      "{connectionPool: {http: {http2MaxRequests: 3}}}"));
  std::string slow = "http://" + std::string(kVip) + "/slow?ms=100";
  // HTTP/1.1, 8 client connections at once (h2load --h1): each is one request in flight, so
  // at most 3 of the 8 reach the app at a time and the others are answered at once.
  RunOutput h1 = inClient({"h2load", "--h1", "-n", "80", "-c", "8", slow});
  auto [ok1, failed1] = statusCounts(h1.out);
  EXPECT_EQ(ok1 + failed1, 80) << h1.out << h1.err;
  EXPECT_GE(ok1, 3) << h1.out;
  EXPECT_GT(failed1, 0) << "nothing overflowed: " << h1.out;
  // h2c, 10 streams at a time on one connection: the same limit per request.
  RunOutput h2 = inClient({"h2load", "-n", "60", "-c", "1", "-m", "10", slow});
  auto [ok2, failed2] = statusCounts(h2.out);
  EXPECT_EQ(ok2 + failed2, 60) << h2.out << h2.err;
  EXPECT_GE(ok2, 3) << h2.out;
  EXPECT_GT(failed2, 0) << "nothing overflowed: " << h2.out;
  // The app never answered more than 3 at once (its own count, over HTTP/1.1).
  json last = clientJson("tests/interop/http_keepalive_client.py", {kVip, "80", "1"});
  EXPECT_EQ(last["statuses"].value("200", 0), 1) << last.dump();
  EXPECT_GE(last["last"].value("max_in_flight", 0), 1);
  EXPECT_LE(last["last"].value("max_in_flight", 99), 3) << last.dump();
  // Each refusal is one request with flag UO and one overflow of the destination's breaker.
  EXPECT_EQ(requestsTotal({{"response_code", "503"}, {"response_flags", "UO"}}), failed1 + failed2);
  auto overflows = nodes_[0]->metricSum("sluice_circuit_breaker_overflow_total",
                                        {{"destination", "shop/web/v2"}, {"resource", "requests"}});
  ASSERT_TRUE(overflows) << overflows.error().message();
  EXPECT_EQ(*overflows, failed1 + failed2);
  // Nothing stays counted once the requests are over.
  ASSERT_TRUE(waitFor([&] {
    auto open = nodes_[0]->metricSum("sluice_circuit_breaker_open", {{"destination", "shop/web/v2"}});
    return open && *open == 0;
  }, std::chrono::seconds(5))) << "the breaker still counts requests that ended";
}

TEST_F(ResilienceE2eTest, UpstreamConnectionsAreLimitedAndCarryTheirShareOfRequests) {
  ASSERT_NO_FATAL_FAILURE(startL7Mesh("tests/interop/http_echo_server.py", "http", kToV2,
                                      [&] { return servicePolicyApplied("connectionPool"); },
                                      "{connectionPool: {tcp: {maxConnections: 2}, http: {maxRequestsPerConnection: 2}}}"));
  // One keep-alive client connection, 20 requests, round robin over web-v2's two addresses
  // (IPv4 and IPv6, a connection each): every connection carries two requests (the app sees
  // 10 peers), and each closed one gives its count back, so none is refused.
  json result = clientJson("tests/interop/http_keepalive_client.py", {kVip, "80", "20"});
  EXPECT_EQ(result["statuses"].value("200", 0), 20) << result.dump();
  EXPECT_EQ(result.value("upstream_peers", 0), 10) << result.dump();
  // Four clients at once, each needing a connection of its own: two at a time for the
  // destination, the others are refused (HTTP/1.1 and h2c alike).
  std::string slow = "http://" + std::string(kVip) + "/slow?ms=200";
  for (bool h2 : {false, true}) {
    std::vector<std::string> argv = {"h2load", "-n", "20", "-c", "4", slow};
    if (!h2) argv.insert(argv.begin() + 1, "--h1");
    RunOutput out = inClient(argv);
    auto [ok, failed] = statusCounts(out.out);
    EXPECT_EQ(ok + failed, 20) << out.out << out.err;
    EXPECT_GE(ok, 1) << out.out;
    EXPECT_GT(failed, 0) << (h2 ? "h2c" : "HTTP/1.1") << ": nothing overflowed: " << out.out;
  }
  auto overflows = nodes_[0]->metricSum("sluice_circuit_breaker_overflow_total",
                                        {{"destination", "shop/web/v2"}, {"resource", "connections"}});
  ASSERT_TRUE(overflows) << overflows.error().message();
  // Every refusal was an overflow; not every overflow a refusal (an idle connection of the
  // same client to the other address may be closed to make room).
  double refused = requestsTotal({{"response_code", "503"}, {"response_flags", "UO"}});
  EXPECT_GT(refused, 0);
  EXPECT_LE(refused, *overflows);
}

TEST_F(ResilienceE2eTest, ATcpServiceRefusesConnectionsBeyondItsMaximum) {
  ASSERT_NO_FATAL_FAILURE(startL7Mesh("tests/interop/http_echo_server.py", "tcp", kRoutes,
                                      [&] { return servicePolicyApplied("connectionPool"); },
                                      "{connectionPool: {tcp: {maxConnections: 1}}}"));
  std::string url = "http://" + std::string(kVip) + "/";
  auto curl = [&](const std::string& target) {
    return inClient({"curl", "-sS", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}", target}).out;
  };
  EXPECT_EQ(curl(url), "200") << "one connection at a time is allowed";
  auto openConnections = [&] {
    return nodes_[0]->metricSum("sluice_circuit_breaker_open", {{"destination", "shop/web/"}, {"resource", "connections"}});
  };
  // curl is done once it has the answer; the tunnels close the connection a few hops later. Only
  // then is the one allowed connection free (else the slow one below would be the refused one).
  ASSERT_TRUE(waitFor([&] {
    auto open = openConnections();
    return open && *open == 0;
  }, std::chrono::seconds(5))) << "the first connection never ended";
  // One connection held open (a slow answer): the next one is refused while it lasts...
  auto held = cluster_->runInPod("client", {.argv = {"curl", "-sS", "-o", "/dev/null", url + "slow?ms=3000"}});
  ASSERT_TRUE(held) << held.error().message();
  ASSERT_TRUE(waitFor([&] {
    auto open = openConnections();
    return open && *open == 1;
  }, std::chrono::seconds(5))) << "the slow connection never counted";
  EXPECT_NE(curl(url), "200") << "a second connection got through";
  auto refused = nodes_[0]->metricSum("sluice_tcp_connections_failed_total", {{"reason", "overflow"}});
  ASSERT_TRUE(refused) << refused.error().message();
  EXPECT_EQ(*refused, 1);
  // ...and taken again once it is over.
  auto exited = held->wait(std::chrono::seconds(10));
  EXPECT_TRUE(exited && *exited == 0) << "the held connection failed";
  ASSERT_TRUE(waitFor([&] {
    auto open = openConnections();
    return open && *open == 0;
  }, std::chrono::seconds(5)));
  EXPECT_EQ(curl(url), "200");
}

}  // namespace
}  // namespace sluice

namespace sluice {
namespace {

TEST_F(ResilienceE2eTest, RequestsWaitingForAConnectionBeyondTheLimitAreAnswered503UOAtOnce) {
  ASSERT_NO_FATAL_FAILURE(startL7Mesh("tests/interop/http_echo_server.py", "http", kToV2,
                                      [&] { return servicePolicyApplied("connectionPool"); },
                                      "{connectionPool: {http: {http1MaxPendingRequests: 10}}}"));
  std::string url = "http://" + std::string(kVip) + "/";
  ASSERT_EQ(inClient({"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", url}).out, "200");
  auto overflows = [&] {
    auto n = nodes_[0]->metricSum("sluice_circuit_breaker_overflow_total",
                                  {{"destination", "shop/web/v2"}, {"resource", "pending_requests"}});
    return n.value_or(-1);
  };
  // node1's tunnel stopped: the upstream connections of 20 clients at once (one request each)
  // are never made, so their requests wait. 10 may; the other 10 are answered at once.
  RunOutput load;
  StoppedTunnel stopped(nodes_[1]->tunnelPid());
  ASSERT_TRUE(stopped.stopped());
  std::thread clients([&] { load = inClient({"h2load", "--h1", "-n", "20", "-c", "20", url}); });
  bool refusedAtOnce = waitFor([&] { return overflows() == 10; }, std::chrono::seconds(8));
  EXPECT_TRUE(refusedAtOnce) << "overflows while node1 was stopped: " << overflows();
  stopped.resume();  // the waiting requests go on
  clients.join();
  auto [ok, failed] = statusCounts(load.out);
  EXPECT_EQ(ok, 10) << "the admitted requests succeed once their connections are made: " << load.out << load.err;
  EXPECT_EQ(failed, 10) << load.out;
  EXPECT_EQ(requestsTotal({{"response_code", "503"}, {"response_flags", "UO"}}), 10);
}

TEST_F(ResilienceE2eTest, ARateLimitOf100PerSecondPasses100PerSecondOf1000Offered) {
  // 10 tokens every 100 ms: 100 requests a second, a burst of at most 10.
  std::string routes = kRoutes + webRateLimit("{maxTokens: 10, tokensPerFill: 10, fillInterval: 100ms}");
  ASSERT_NO_FATAL_FAILURE(startL7Mesh("tests/interop/http_echo_server.py", "http", routes,
                                      [&] { return servicePolicyApplied("localRateLimit"); }));
  // 10 HTTP/1.1 clients at 100 requests a second each, for 5 s.
  RunOutput load = inClient({"h2load", "--h1", "-c", "10", "--rps", "100", "-D", "5", "http://" + std::string(kVip) + "/"});
  std::smatch m;
  ASSERT_TRUE(std::regex_search(load.out, m, std::regex(R"(status codes: (\d+) 2xx, \d+ 3xx, (\d+) 4xx)"))) << load.out << load.err;
  int passed = std::stoi(m[1]), limited = std::stoi(m[2]);
  EXPECT_GE(passed, 475) << "100 ± 5 a second over 5 s: " << load.out;
  EXPECT_LE(passed, 525) << load.out;
  EXPECT_GE(passed + limited, 4000) << "the offered load fell short of 1,000 a second: " << load.out;
  EXPECT_EQ(requestsTotal({{"response_code", "429"}, {"response_flags", "RL"}}), limited);
}

}  // namespace
}  // namespace sluice

namespace sluice {
namespace {

TEST_F(ResilienceE2eTest, ADestinationsRetryBudgetIsItsDestinationRules) {
  appExtraArgs_["web-v2"] = {"--status", "503"};
  // No share and no floor: Istio's default retries would take each 503 to web-v1, the budget
  // refuses every one.
  ASSERT_NO_FATAL_FAILURE(startL7Mesh("tests/interop/http_echo_server.py", "http", kRoutes,
                                      [&] { return servicePolicyApplied("retryBudget"); },
                                      "{retryBudget: {percent: 0, minRetryConcurrency: 0}}"));
  json result = clientJson("tests/interop/http_keepalive_client.py", {kVip, "80", "200"});
  int failed = result["statuses"].value("503", 0);
  EXPECT_EQ(failed + result["statuses"].value("200", 0), 200) << result.dump();
  EXPECT_GE(failed, 80) << "round robin: about half reach web-v2, and none is retried: " << result.dump();
  auto retried = nodes_[0]->metricSum("sluice_retries_total", {{"destination_service", "shop/web"}});
  auto denied = nodes_[0]->metricSum("sluice_retry_budget_denied_total", {{"destination_service", "shop/web"}});
  ASSERT_TRUE(retried && denied);
  EXPECT_EQ(*retried, 0);
  EXPECT_EQ(*denied, failed);
}

}  // namespace
}  // namespace sluice
