#include "proxy/tcp_metrics.h"

#include "proxy/config_snapshot.h"
#include "proxy/pod_runtime.h"
#include "proxy/request_record.h"

namespace sluice::ztunnel {

std::shared_ptr<TcpSeries> TcpMetrics::series(const TcpLabels& labels) {
  std::lock_guard lock(mutex_);
  if (auto it = series_.find(labels); it != series_.end()) return it->second;
  if (series_.size() >= kMaxSeries - 1) {
    // The overflow series: the reporter kept, every peer label unknown.
    TcpLabels overflow;
    overflow.reporter = labels.reporter;
    if (labels.reporter == "source") overflow.source = labels.source;  // the pod's own side stays
    else overflow.destination = labels.destination;
    auto& s = series_[overflow];
    if (!s) s = std::make_shared<TcpSeries>();
    return s;
  }
  return series_.emplace(labels, std::make_shared<TcpSeries>()).first->second;
}

std::vector<std::pair<TcpLabels, std::shared_ptr<const TcpSeries>>> TcpMetrics::snapshot() const {
  std::lock_guard lock(mutex_);
  return {series_.begin(), series_.end()};
}

TcpLabels outboundTcpLabels(const ConfigSnapshot& config, const PodRuntime& pod, const std::string& original,
                            const std::string& endpointIp, const std::string& trustDomain) {
  TcpLabels l;
  l.reporter = "source";
  l.source = sourceWorkloadLabels(podWorkload(config, pod.addresses), pod, trustDomain);
  if (auto w = config.workloadsByIp.find(endpointIp); w != config.workloadsByIp.end()) {
    l.destination = workloadLabels(*w->second, trustDomain);
  }
  if (auto s = config.servicesByVip.find(original); s != config.servicesByVip.end()) {
    ServiceNames names = serviceNames(*s->second);
    l.destinationService = names.fqdn;
    l.destinationServiceName = names.name;
    l.destinationServiceNamespace = names.ns;
  }
  return l;
}

TcpLabels inboundTcpLabels(const ConfigSnapshot& config, const PodRuntime& pod, const std::string& peerIp,
                           const std::string& peerIdentity, bool mutualTls, const std::string& trustDomain) {
  TcpLabels l;
  l.reporter = "destination";
  l.destination = sourceWorkloadLabels(podWorkload(config, pod.addresses), pod, trustDomain);  // the pod's own labels
  if (auto w = config.workloadsByIp.find(peerIp); w != config.workloadsByIp.end()) {
    l.source = workloadLabels(*w->second, trustDomain);
  }
  // The proven identity wins over what the address suggests.
  l.source.principal = peerIdentity.empty() ? "unknown" : peerIdentity;
  l.connectionSecurityPolicy = mutualTls ? "mutual_tls" : "none";
  return l;
}

}  // namespace sluice::ztunnel
