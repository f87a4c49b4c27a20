// The configuration the data path decides by: immutable once published, versioned, swapped
// atomically. Workers take a reference per new connection, so an update never changes what an
// established connection was decided with, and a reader never sees half an update.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "l7/http_route.h"
#include "proxy/circuit_breaker.h"
#include "proxy/load_balancer.h"
#include "proxy/outlier_detection.h"
#include "proxy/rate_limiter.h"
#include "sluice/config/v1/config.pb.h"

namespace sluice::ztunnel {

// A service as the data path needs it: where its VIPs and ports are, its endpoints, and how a
// new connection picks among them (the L4 view of its VirtualService and DestinationRule).
struct ServiceEntry {
  std::string key;  // "namespace/name"
  std::string hostname;
  // Istio's protocol selection (the port's appProtocol or name prefix): HTTP ports are
  // routed per request by the client's tunnel; the others per connection.
  enum class Protocol { kTcp, kHttp, kHttp2, kGrpc };
  struct Port {
    uint16_t port = 0, targetPort = 0;
    Protocol protocol = Protocol::kTcp;
  };
  const Port* findPort(uint16_t number) const {
    for (const auto& p : ports) {
      if (p.port == number) return &p;
    }
    return nullptr;
  }
  std::vector<Port> ports;
  struct Endpoint {
    std::string address;
    std::map<std::string, std::string> labels;
    uint32_t weight = 1;
    // The host behind the address, as outlier detection counts them: a workload's uid (a
    // dual-stack pod is one host with two addresses, and fails or recovers as one), else the
    // address itself.
    std::string host;
    // Where it runs (its workload's; empty when not a known workload): locality ranking.
    std::string node;
    Locality locality;
  };
  std::vector<Endpoint> endpoints;
  size_t hostCount = 0;  // distinct Endpoint::host values (outlier detection's pool size)
  // Weighted destinations of the service's route (VirtualService tcp route, or its catch-all
  // http route, at L4 per connection). Empty: every endpoint, no split.
  struct Split {
    std::string subset;  // "" = all endpoints
    std::map<std::string, std::string> labels;
    int weight = 0;
  };
  std::vector<Split> splits;
  // The DestinationRule's loadBalancer, and the subsets that override it (by subset name).
  LbPolicy loadBalancer;
  std::map<std::string, LbPolicy> subsetLoadBalancers;
  const LbPolicy& loadBalancerFor(const std::string& subset) const {
    auto it = subsetLoadBalancers.find(subset);
    return it == subsetLoadBalancers.end() ? loadBalancer : it->second;
  }
  // The DestinationRule's outlierDetection, and the subsets that override it (by subset name).
  OutlierPolicy outlier;
  std::map<std::string, OutlierPolicy> subsetOutliers;
  const OutlierPolicy& outlierFor(const std::string& subset) const {
    auto it = subsetOutliers.find(subset);
    return it == subsetOutliers.end() ? outlier : it->second;
  }
  // The DestinationRule's connectionPool (circuit breaking), and each subset's (its own or the
  // service's, with its own breaker: a subset is a destination of its own).
  DestinationPool pool;
  std::map<std::string, DestinationPool> subsetPools;
  const DestinationPool& poolFor(const std::string& subset) const {
    auto it = subsetPools.find(subset);
    return it == subsetPools.end() ? pool : it->second;
  }
  // The DestinationRule's retryBudget (else Linkerd's default): the node's retries of this
  // service are held to it (l7/retry_policy.h). A subset with a retryBudget of its own has a
  // budget of its own (counted under "<service>/<subset>", as Envoy's cluster per subset).
  l7::RetryBudgetPolicy retryBudget;
  std::map<std::string, l7::RetryBudgetPolicy> subsetRetryBudgets;
  const l7::RetryBudgetPolicy& retryBudgetFor(const std::string& subset) const {
    auto it = subsetRetryBudgets.find(subset);
    return it == subsetRetryBudgets.end() ? retryBudget : it->second;
  }
  std::string retryBudgetKey(const std::string& subset) const {
    return subsetRetryBudgets.contains(subset) ? key + "/" + subset : key;
  }
  // Kubernetes spec.trafficDistribution: prefer close endpoints when no localityLbSetting is
  // in force (proxy/locality.h).
  TrafficDistribution trafficDistribution = TrafficDistribution::kAny;
  // Its LocalRateLimit (null: none).
  std::shared_ptr<const RateLimitEntry> rateLimit;
  // consistentHash: the table of each subset ("" = every endpoint) whose policy hashes; its
  // candidates are `endpoints` indices, in order.
  struct HashIndex {
    std::shared_ptr<const HashTable> table;
    std::vector<uint32_t> endpoints;
  };
  std::map<std::string, HashIndex> hashTables;
  // The http routes of its VirtualService, per request (HTTP ports); without one, a single
  // route to the service itself. Never null.
  std::shared_ptr<const l7::HttpRouteTable> httpRoutes = std::make_shared<const l7::HttpRouteTable>();
};

// A mesh workload (a pod some node's tunnel serves): where it is and who it runs as. A
// destination that is one of these is reached over HBONE, and its identity is what the
// destination's certificate must prove.
struct WorkloadEntry {
  std::string uid, name, ns, serviceAccount, node;
  std::map<std::string, std::string> labels;
  std::vector<std::string> addresses;
  Locality locality;
  Placement placement() const { return {&node, &locality, &labels}; }
};

struct ConfigSnapshot {
  uint64_t version = 0;
  std::string controllerVersion;  // the controller's system_version this came from
  // By "vip:port" as SocketAddress::toString() prints it.
  std::map<std::string, std::shared_ptr<const ServiceEntry>> servicesByVip;
  // By FQDN (<name>.<namespace>.svc.cluster.local): where L7 routes name their destinations.
  std::map<std::string, std::shared_ptr<const ServiceEntry>> servicesByHost;
  // By IP address text (as SocketAddress::ip() prints it).
  std::map<std::string, std::shared_ptr<const WorkloadEntry>> workloadsByIp;
  std::vector<std::shared_ptr<const config::v1::AuthorizationPolicy>> authorizationPolicies;
  std::vector<std::shared_ptr<const config::v1::PeerAuthentication>> peerAuthentications;
  size_t resourceCount = 0;
  // Nodes the controller revoked: node name -> revocation time (Unix seconds).
  std::map<std::string, int64_t> revokedNodes;
  // Istio's outboundTrafficPolicy: ALLOW_ANY passes unknown destinations through;
  // REGISTRY_ONLY refuses them (there is no registry before the controller issue: all unknown).
  enum class OutboundPolicy { kAllowAny, kRegistryOnly } outboundPolicy = OutboundPolicy::kAllowAny;
};

class SnapshotStore {
 public:
  SnapshotStore() : current_(std::make_shared<const ConfigSnapshot>()) {}
  std::shared_ptr<const ConfigSnapshot> current() const { return current_.load(std::memory_order_acquire); }
  // Publishes `next` with a version one above the current one.
  void publish(ConfigSnapshot next) {
    next.version = current()->version + 1;
    current_.store(std::make_shared<const ConfigSnapshot>(next), std::memory_order_release);
  }

 private:
  std::atomic<std::shared_ptr<const ConfigSnapshot>> current_;
};

}  // namespace sluice::ztunnel
