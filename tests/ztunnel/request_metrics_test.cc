// Istio's request metrics and the access log: the labels a workload gives, histograms by
// Istio's buckets, the series bound, the Prometheus exposition and one access-log line.
#include "proxy/request_metrics.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "admin/admin_views.h"
#include "proxy/config_snapshot.h"
#include "proxy/request_record.h"
#include "proxy/tcp_metrics.h"

namespace sluice::ztunnel {
namespace {

TEST(RequestMetrics, WorkloadLabelsFollowIstiosCanonicalNames) {
  struct Case {
    std::map<std::string, std::string> labels;
    std::string app, version, service, revision;
  };
  const Case cases[] = {
      {{}, "unknown", "unknown", "web-7d9f", "latest"},
      {{{"app", "web"}, {"version", "v2"}}, "web", "v2", "web", "v2"},
      {{{"app", "web"}, {"app.kubernetes.io/name", "shop-web"}, {"app.kubernetes.io/version", "1.4"}}, "web", "unknown",
       "shop-web", "1.4"},
      {{{"app", "web"}, {"service.istio.io/canonical-name", "storefront"}, {"service.istio.io/canonical-revision", "r7"},
        {"version", "v2"}},
       "web", "v2", "storefront", "r7"},
  };
  for (const auto& c : cases) {
    WorkloadEntry w{.uid = "u", .name = "web-7d9f", .ns = "shop", .serviceAccount = "web", .node = "n", .labels = c.labels, .addresses = {}};
    WorkloadLabels l = workloadLabels(w, "cluster.local");
    EXPECT_EQ(l.workload, "web-7d9f");
    EXPECT_EQ(l.ns, "shop");
    EXPECT_EQ(l.principal, "spiffe://cluster.local/ns/shop/sa/web");
    EXPECT_EQ(l.app, c.app);
    EXPECT_EQ(l.version, c.version);
    EXPECT_EQ(l.canonicalService, c.service);
    EXPECT_EQ(l.canonicalRevision, c.revision);
  }
}

TEST(RequestMetrics, HistogramsUseIstiosBucketsAndSeriesAreBounded) {
  RequestMetrics metrics;
  RequestLabels ok;
  ok.responseCode = 200;
  metrics.record(ok, 0.3, 0, 150);     // first buckets: <= 0.5 ms; bytes <= 1 and <= 1000
  metrics.record(ok, 7, 12, 2000000);  // <= 10 ms; <= 100 and <= 1e7
  auto series = metrics.snapshot();
  ASSERT_EQ(series.size(), 1u);
  const auto& s = series[0].second;
  EXPECT_EQ(s.requests, 2u);
  ASSERT_EQ(s.duration.counts.size(), RequestMetrics::kDurationBucketsMs.size() + 1);
  EXPECT_EQ(s.duration.counts[0], 1u);  // 0.5
  EXPECT_EQ(s.duration.counts[3], 1u);  // 10
  EXPECT_DOUBLE_EQ(s.duration.sum, 7.3);
  EXPECT_EQ(s.requestBytes.counts[0], 1u);   // 1
  EXPECT_EQ(s.requestBytes.counts[2], 1u);   // 100
  EXPECT_EQ(s.responseBytes.counts[3], 1u);  // 1000
  EXPECT_EQ(s.responseBytes.counts[7], 1u);  // 1e7

  for (int code = 0; code < static_cast<int>(RequestMetrics::kMaxSeries) + 10; ++code) {
    RequestLabels l;
    l.responseCode = 1000 + code;
    metrics.record(l, 1, 1, 1);
  }
  EXPECT_EQ(metrics.snapshot().size(), RequestMetrics::kMaxSeries);
  EXPECT_EQ(metrics.dropped(), 11u);  // 1010 new label sets; the first series held one of the 1000 places
}

TEST(RequestMetrics, ExpositionCarriesIstiosLabelSetAndInfBuckets) {
  auto pod = std::make_shared<PodRuntime>();
  pod->name = "client";
  pod->ns = "shop";
  RequestLabels l;
  l.source.workload = "client";
  l.destinationService = "web.shop.svc.cluster.local";
  l.destinationServiceName = "web";
  l.destinationServiceNamespace = "shop";
  l.requestProtocol = "grpc";
  l.responseCode = 200;
  l.grpcResponseStatus = "5";
  l.responseFlags = "-";
  pod->requests.record(l, 3, 10, 20);
  std::string text = prometheusText({pod}, {});
  for (const char* want :
       {"istio_requests_total{reporter=\"source\",source_workload=\"client\"", "destination_service=\"web.shop.svc.cluster.local\"",
        "destination_service_name=\"web\"", "request_protocol=\"grpc\"", "response_code=\"200\"", "grpc_response_status=\"5\"",
        "response_flags=\"-\"", "connection_security_policy=\"unknown\"", "source_cluster=\"Kubernetes\"",
        "istio_request_duration_milliseconds_bucket{", "le=\"+Inf\"} 1", "istio_request_duration_milliseconds_sum{",
        "istio_request_bytes_count{", "istio_response_bytes_bucket{"}) {
    EXPECT_NE(text.find(want), std::string::npos) << want << "\n" << text.substr(0, 4000);
  }
}

TEST(RequestMetrics, AccessLogLineIsOneJsonObjectWithEnvoysFieldNames) {
  PodRuntime pod;
  pod.name = "client";
  pod.ns = "shop";
  l7::HttpHead head;
  head.method = "GET";
  head.target = "/a?b=\"quoted\"\n";
  head.add("host", "web");
  RequestRecord r = beginRequest({}, head, false, "HTTP/1.1", std::chrono::steady_clock::now());
  r.labels.responseCode = 404;
  r.labels.responseFlags = "NR";
  r.requestId = "id-1";
  std::string line = accessLogLine(r, pod, 1.5);
  EXPECT_EQ(line.find('\n'), std::string::npos) << "a request is one line, whatever its path holds";
  auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["method"], "GET");
  EXPECT_EQ(j["path"], "/a?b=\"quoted\"\n");
  EXPECT_EQ(j["authority"], "web");
  EXPECT_EQ(j["response_code"], 404);
  EXPECT_EQ(j["response_flags"], "NR");
  EXPECT_EQ(j["x_request_id"], "id-1");
  EXPECT_EQ(j["protocol"], "HTTP/1.1");
  EXPECT_EQ(j["source_workload"], "client");
  EXPECT_DOUBLE_EQ(j["duration"].get<double>(), 1.5);
}

TEST(RequestMetrics, OutstandingRequestsFollowTheTryThatAnswers) {
  // LEAST_REQUEST's view: a request counts against its endpoint while in flight; a retry moves
  // it to the new endpoint; its end takes it off. Nothing is left behind.
  OutstandingRequests outstanding;
  PodRuntime pod;
  RequestRecord r;
  r.upstreamHost = "10.0.0.1:8080";
  markOutstanding(r, outstanding);
  markOutstanding(r, outstanding);  // once per request
  EXPECT_EQ(outstanding, (OutstandingRequests{{"10.0.0.1:8080", 1}}));
  releaseOutstanding(r);
  r.upstreamHost = "10.0.0.2:8080";
  markOutstanding(r, outstanding);
  EXPECT_EQ(outstanding, (OutstandingRequests{{"10.0.0.2:8080", 1}}));
  endRequest(pod, r, std::chrono::steady_clock::now());
  EXPECT_TRUE(outstanding.empty());
}

TEST(TcpMetrics, BothSidesLabelsForEachDirection) {
  ConfigSnapshot config;
  auto web = std::make_shared<WorkloadEntry>(
      WorkloadEntry{.uid = "u", .name = "web-v2", .ns = "shop", .serviceAccount = "web", .node = "n1",
                    .labels = {{"app", "web"}, {"version", "v2"}}, .addresses = {"10.244.1.3"}});
  auto client = std::make_shared<WorkloadEntry>(
      WorkloadEntry{.uid = "c", .name = "client", .ns = "shop", .serviceAccount = "default", .node = "n0",
                    .labels = {{"app", "client"}}, .addresses = {"10.244.0.2"}});
  config.workloadsByIp = {{"10.244.1.3", web}, {"10.244.0.2", client}};
  auto service = std::make_shared<ServiceEntry>();
  service->key = "shop/web";
  service->hostname = "web.shop.svc.cluster.local";
  config.servicesByVip["10.96.0.10:80"] = service;
  PodRuntime pod;
  pod.name = "client";
  pod.ns = "shop";
  pod.addresses = {"10.244.0.2"};

  TcpLabels out = outboundTcpLabels(config, pod, "10.96.0.10:80", "10.244.1.3", "cluster.local");
  EXPECT_EQ(out.reporter, "source");
  EXPECT_EQ(out.source.workload, "client");
  EXPECT_EQ(out.source.app, "client");
  EXPECT_EQ(out.destination.workload, "web-v2");
  EXPECT_EQ(out.destination.principal, "spiffe://cluster.local/ns/shop/sa/web");
  EXPECT_EQ(out.destinationServiceName, "web");
  EXPECT_EQ(out.connectionSecurityPolicy, "unknown");
  TcpLabels direct = outboundTcpLabels(config, pod, "10.244.1.3:8080", "10.244.1.3", "cluster.local");
  EXPECT_EQ(direct.destinationService, "unknown");  // not through a service
  EXPECT_EQ(direct.destination.workload, "web-v2");

  PodRuntime server;
  server.name = "web-v2";
  server.ns = "shop";
  server.addresses = {"10.244.1.3"};
  TcpLabels in = inboundTcpLabels(config, server, "10.244.0.2", "spiffe://cluster.local/ns/shop/sa/default", true, "cluster.local");
  EXPECT_EQ(in.reporter, "destination");
  EXPECT_EQ(in.destination.workload, "web-v2");
  EXPECT_EQ(in.source.workload, "client");
  EXPECT_EQ(in.source.principal, "spiffe://cluster.local/ns/shop/sa/default");
  EXPECT_EQ(in.connectionSecurityPolicy, "mutual_tls");
  // Plaintext: whatever the address suggests, no identity was proven.
  TcpLabels plain = inboundTcpLabels(config, server, "10.244.0.2", "", false, "cluster.local");
  EXPECT_EQ(plain.source.principal, "unknown");
  EXPECT_EQ(plain.connectionSecurityPolicy, "none");
}

TEST(TcpMetrics, SeriesAreSharedPerLabelSetAndBounded) {
  TcpMetrics metrics;
  TcpLabels a;
  a.source.workload = "client";
  a.destination.workload = "web";
  auto first = metrics.series(a);
  EXPECT_EQ(metrics.series(a), first);  // one series per label set
  for (size_t i = 0; i < TcpMetrics::kMaxSeries + 50; ++i) {
    TcpLabels l = a;
    l.destination.workload = "w" + std::to_string(i);
    metrics.series(l)->opened++;
  }
  auto all = metrics.snapshot();
  EXPECT_EQ(all.size(), TcpMetrics::kMaxSeries);
  uint64_t opened = 0;
  for (const auto& [labels, series] : all) opened += series->opened.load();
  EXPECT_EQ(opened, TcpMetrics::kMaxSeries + 50) << "connections past the bound are counted in the overflow series";
}

}  // namespace
}  // namespace sluice::ztunnel
