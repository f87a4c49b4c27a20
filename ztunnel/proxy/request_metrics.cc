#include "proxy/request_metrics.h"

#include <algorithm>
#include <span>

#include "proxy/config_snapshot.h"

namespace sluice::ztunnel {

namespace {

std::string firstLabel(const std::map<std::string, std::string>& labels, std::initializer_list<const char*> keys,
                       const std::string& otherwise) {
  for (const char* key : keys) {
    if (auto it = labels.find(key); it != labels.end() && !it->second.empty()) return it->second;
  }
  return otherwise;
}

void observe(Histogram& h, std::span<const double> bounds, double value) {
  if (h.counts.empty()) h.counts.assign(bounds.size() + 1, 0);
  size_t bucket = static_cast<size_t>(std::lower_bound(bounds.begin(), bounds.end(), value) - bounds.begin());
  ++h.counts[bucket];
  h.sum += value;
  ++h.total;
}

}  // namespace

ServiceNames serviceNames(const ServiceEntry& s) {
  auto slash = s.key.find('/');  // the key is "namespace/name"
  if (slash == std::string::npos) return {s.hostname, s.key, "unknown"};
  return {s.hostname, s.key.substr(slash + 1), s.key.substr(0, slash)};
}

WorkloadLabels workloadLabels(const WorkloadEntry& w, const std::string& trustDomain) {
  WorkloadLabels out;
  out.workload = w.name;
  out.ns = w.ns;
  std::string sa = w.serviceAccount.empty() ? "default" : w.serviceAccount;
  out.principal = "spiffe://" + trustDomain + "/ns/" + w.ns + "/sa/" + sa;
  out.app = firstLabel(w.labels, {"app"}, "unknown");
  out.version = firstLabel(w.labels, {"version"}, "unknown");
  out.canonicalService = firstLabel(w.labels, {"service.istio.io/canonical-name", "app.kubernetes.io/name", "app"}, w.name);
  out.canonicalRevision =
      firstLabel(w.labels, {"service.istio.io/canonical-revision", "app.kubernetes.io/version", "version"}, "latest");
  return out;
}

void RequestMetrics::record(const RequestLabels& labels, double durationMs, uint64_t requestBytes, uint64_t responseBytes) {
  std::lock_guard lock(mutex_);
  auto it = series_.find(labels);
  if (it == series_.end()) {
    if (series_.size() >= kMaxSeries) {
      ++dropped_;
      return;
    }
    it = series_.emplace(labels, Series{}).first;
  }
  Series& s = it->second;
  ++s.requests;
  observe(s.duration, kDurationBucketsMs, durationMs);
  observe(s.requestBytes, kSizeBuckets, static_cast<double>(requestBytes));
  observe(s.responseBytes, kSizeBuckets, static_cast<double>(responseBytes));
}

std::vector<std::pair<RequestLabels, RequestMetrics::Series>> RequestMetrics::snapshot() const {
  std::lock_guard lock(mutex_);
  return {series_.begin(), series_.end()};
}

uint64_t RequestMetrics::dropped() const {
  std::lock_guard lock(mutex_);
  return dropped_;
}

}  // namespace sluice::ztunnel
