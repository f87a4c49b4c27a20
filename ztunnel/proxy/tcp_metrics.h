// Istio's TCP metrics with both sides' labels: istio_tcp_connections_opened_total,
// istio_tcp_connections_closed_total, istio_tcp_received_bytes_total, istio_tcp_sent_bytes_total,
// each series naming the source and the destination workload (and service), as Istio's
// dashboards expect. A connection looks its series up once, when it starts (under a mutex), and
// then counts into the series' atomics; the scrape reads them. A pod holds at most kMaxSeries
// label sets; connections beyond share one series whose peer labels are "unknown".
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "proxy/request_metrics.h"

namespace sluice::ztunnel {

struct ConfigSnapshot;
struct PodRuntime;

struct TcpLabels {
  std::string reporter = "source";  // "source": the pod's outbound; "destination": its inbound
  WorkloadLabels source, destination;
  std::string destinationService = "unknown", destinationServiceName = "unknown", destinationServiceNamespace = "unknown";
  // What the destination reporter saw: "mutual_tls" (HBONE) or "none" (plaintext); a source
  // reporter says "unknown", as Istio's do.
  std::string connectionSecurityPolicy = "unknown";
  auto operator<=>(const TcpLabels&) const = default;
};

struct TcpSeries {
  std::atomic<uint64_t> opened{0}, closed{0};
  std::atomic<uint64_t> received{0};  // from the client (request direction)
  std::atomic<uint64_t> sent{0};      // to the client (response direction)
};

class TcpMetrics {
 public:
  static constexpr size_t kMaxSeries = 1000;
  std::shared_ptr<TcpSeries> series(const TcpLabels& labels);
  std::vector<std::pair<TcpLabels, std::shared_ptr<const TcpSeries>>> snapshot() const;

 private:
  mutable std::mutex mutex_;
  std::map<TcpLabels, std::shared_ptr<TcpSeries>> series_;
};

// The labels of a pod's outbound connection to `endpoint` (an address), which the app opened to
// `original` (a service VIP:port when it went through a service; else the same address).
TcpLabels outboundTcpLabels(const ConfigSnapshot& config, const PodRuntime& pod, const std::string& original,
                            const std::string& endpointIp, const std::string& trustDomain);
// The labels of a connection into the pod from `peerIp`, proven as `peerIdentity` over HBONE
// (mutual TLS) or plaintext (identity "").
TcpLabels inboundTcpLabels(const ConfigSnapshot& config, const PodRuntime& pod, const std::string& peerIp,
                           const std::string& peerIdentity, bool mutualTls, const std::string& trustDomain);

}  // namespace sluice::ztunnel
