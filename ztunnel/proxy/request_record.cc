#include "proxy/request_record.h"

#include <fmt/chrono.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <nlohmann/json.hpp>

namespace sluice::ztunnel {

namespace {

std::atomic<std::shared_ptr<spdlog::logger>>& accessLogger() {
  static std::atomic<std::shared_ptr<spdlog::logger>> logger;
  return logger;
}

}  // namespace

WorkloadLabels sourceWorkloadLabels(const WorkloadEntry* workload, const PodRuntime& pod, const std::string& trustDomain) {
  if (workload != nullptr) return workloadLabels(*workload, trustDomain);
  WorkloadLabels out;
  out.workload = pod.name;
  out.ns = pod.ns;
  out.canonicalService = pod.name;
  if (!pod.identity.empty()) out.principal = pod.identity;
  return out;
}

RequestRecord beginRequest(const WorkloadLabels& source, const l7::HttpHead& head, bool grpc, std::string protocol,
                           std::chrono::steady_clock::time_point now) {
  RequestRecord r;
  r.active = true;
  r.start = now;
  r.startWall = std::chrono::system_clock::now();
  r.labels.source = source;
  r.labels.requestProtocol = grpc ? "grpc" : "http";
  r.method = head.method;
  r.path = head.target;
  r.authority = std::string(head.authority());
  r.protocol = std::move(protocol);
  return r;
}

void recordRouting(RequestRecord& r, const HttpRouting& routing, const std::string& trustDomain) {
  if (routing.service) {
    ServiceNames names = serviceNames(*routing.service);
    r.labels.destinationService = names.fqdn;
    r.labels.destinationServiceName = names.name;
    r.labels.destinationServiceNamespace = names.ns;
    r.labels.destination.canonicalService = names.name;
  }
  if (routing.workload) r.labels.destination = workloadLabels(*routing.workload, trustDomain);
  if (routing.rule != nullptr) r.route = routing.rule->name;
  if (routing.local) {
    r.labels.responseCode = routing.local->status;
    if (!routing.local->flag.empty()) r.labels.responseFlags = routing.local->flag;
  } else {
    r.upstreamHost = routing.endpoint.toString();
    if (routing.delay.count() > 0) r.labels.responseFlags = "DI";
  }
}

std::string accessLogLine(const RequestRecord& r, const PodRuntime& pod, double durationMs) {
  nlohmann::json line = {
      {"start_time", fmt::format("{:%FT%T}Z", std::chrono::floor<std::chrono::milliseconds>(r.startWall))},
      {"method", r.method},
      {"path", r.path},
      {"protocol", r.protocol},
      {"response_code", r.labels.responseCode},
      {"response_flags", r.labels.responseFlags},
      {"bytes_received", r.requestBytes},
      {"bytes_sent", r.responseBytes},
      {"duration", durationMs},
      {"authority", r.authority},
      {"x_request_id", r.requestId},
      {"route_name", r.route},
      {"upstream_host", r.upstreamHost},
      {"source_workload", pod.name},
      {"source_namespace", pod.ns},
      {"destination_service", r.labels.destinationService},
      {"destination_workload", r.labels.destination.workload},
  };
  if (!r.labels.grpcResponseStatus.empty()) line["grpc_status"] = r.labels.grpcResponseStatus;
  return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void markOutstanding(RequestRecord& r, OutstandingRequests& outstanding) {
  if (r.outstanding != nullptr || r.upstreamHost.empty()) return;
  ++outstanding[r.upstreamHost];
  r.outstanding = &outstanding;
}

void releaseOutstanding(RequestRecord& r) {
  if (r.outstanding == nullptr) return;
  auto it = r.outstanding->find(r.upstreamHost);
  if (it != r.outstanding->end() && --it->second == 0) r.outstanding->erase(it);  // the map holds busy endpoints only
  r.outstanding = nullptr;
}

void endRequest(PodRuntime& pod, RequestRecord& r, std::chrono::steady_clock::time_point now) {
  releaseOutstanding(r);
  r.inFlight.reset();
  r.pending.reset();
  r.retry.reset();
  r.retryInFlight.reset();
  if (!r.active) return;
  r.active = false;
  double durationMs = std::chrono::duration<double, std::milli>(now - r.start).count();
  pod.requests.record(r.labels, durationMs, r.requestBytes, r.responseBytes);
  if (auto logger = accessLogger().load(std::memory_order_acquire)) logger->info(accessLogLine(r, pod, durationMs));
}

void setAccessLog(std::shared_ptr<spdlog::logger> logger) { accessLogger().store(std::move(logger), std::memory_order_release); }

}  // namespace sluice::ztunnel
