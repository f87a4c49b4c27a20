// Istio's standard request metrics, reported by the source's tunnel (reporter="source") since
// that is where Sluice does L7: istio_requests_total, istio_request_duration_milliseconds,
// istio_request_bytes and istio_response_bytes, with Istio's label names and meanings and its
// default histogram buckets. Recorded once per request when it ends (including requests the
// tunnel answered itself and requests cut by a reset), by the pod's worker; read at scrape.
//
// Series are keyed by every label that varies; their number is bounded per pod (kMaxSeries),
// beyond which requests are counted in `dropped` instead of growing memory.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace sluice::ztunnel {

struct ServiceEntry;
struct WorkloadEntry;

// The labels Istio derives from a workload (destination_* or source_*); "unknown" when the
// workload is not known (a destination outside the mesh, a request answered locally).
struct WorkloadLabels {
  std::string workload = "unknown", ns = "unknown", principal = "unknown", app = "unknown", version = "unknown";
  std::string canonicalService = "unknown", canonicalRevision = "latest";
  auto operator<=>(const WorkloadLabels&) const = default;
};
// Canonical service and revision as Istio picks them: service.istio.io/canonical-name,
// app.kubernetes.io/name, app, else the workload's name; canonical-revision,
// app.kubernetes.io/version, version, else "latest".
WorkloadLabels workloadLabels(const WorkloadEntry& workload, const std::string& trustDomain);

// destination_service, _name and _namespace of a service ("unknown" when none).
struct ServiceNames {
  std::string fqdn = "unknown", name = "unknown", ns = "unknown";
};
ServiceNames serviceNames(const ServiceEntry& service);

struct RequestLabels {
  WorkloadLabels source, destination;
  std::string destinationService = "unknown";  // FQDN
  std::string destinationServiceName = "unknown", destinationServiceNamespace = "unknown";
  std::string requestProtocol = "http";  // "http" or "grpc"
  int responseCode = 0;                  // 0: no response (reset before one)
  std::string grpcResponseStatus;        // gRPC only
  std::string responseFlags = "-";       // Envoy's flags: NR, UH, UF, UC, URX, DC, DPE, ...
  auto operator<=>(const RequestLabels&) const = default;
};

struct Histogram {
  std::vector<uint64_t> counts;  // per bucket (not cumulative), the last one above every bound
  double sum = 0;
  uint64_t total = 0;
};

class RequestMetrics {
 public:
  static constexpr size_t kMaxSeries = 1000;
  // Istio's default buckets.
  static constexpr std::array<double, 19> kDurationBucketsMs{0.5,  1,    5,     10,    25,     50,     100,
                                                             250,  500,  1000,  2500,  5000,   10000,  30000,
                                                             60000, 300000, 600000, 1800000, 3600000};
  static constexpr std::array<double, 9> kSizeBuckets{1, 10, 100, 1000, 10000, 100000, 1e6, 1e7, 1e8};

  struct Series {
    uint64_t requests = 0;
    Histogram duration, requestBytes, responseBytes;
  };

  // Worker thread: one finished request.
  void record(const RequestLabels& labels, double durationMs, uint64_t requestBytes, uint64_t responseBytes);
  // Any thread (the scrape): a copy of every series.
  std::vector<std::pair<RequestLabels, Series>> snapshot() const;
  uint64_t dropped() const;

 private:
  // Held per finished request on the pod's worker and per scrape on the admin thread: it is
  // contended only while a scrape copies the series.
  mutable std::mutex mutex_;
  std::map<RequestLabels, Series> series_;
  uint64_t dropped_ = 0;
};

}  // namespace sluice::ztunnel
