#include "daemon/agent.h"

#include <netinet/in.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <filesystem>

#include "daemon/explain.h"
#include "sluice/common/netns.h"

namespace sluice::agent {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

zds::v1::WorkloadRequest addRequest(const PodRecord& pod) {
  zds::v1::WorkloadRequest request;
  auto* w = request.mutable_add()->mutable_workload();
  w->set_uid(pod.uid);
  w->set_name(pod.name);
  w->set_namespace_(pod.ns);
  w->set_service_account(pod.serviceAccount);
  for (const auto& a : pod.addresses) w->add_addresses(a);
  w->mutable_labels()->insert(pod.labels.begin(), pod.labels.end());
  return request;
}

PodCaptureSpec specOf(const PodRecord& pod) {
  return {.addresses = pod.addresses, .labels = pod.labels, .annotations = pod.annotations};
}

}  // namespace

Result<std::unique_ptr<Agent>> Agent::start(AgentOptions options) {
  std::error_code ec;
  fs::create_directories(options.stateDir, ec);
  if (ec) return fail(fmt::format("create state folder {}: {}", options.stateDir, ec.message()));
  // Pods' metadata: the Kubernetes API when the caller set it up, else the registry folder.
  if (!options.podMetadata) options.podMetadata = registryPodMetadata(options.podRegistry);
  std::unique_ptr<Agent> agent(new Agent(std::move(options)));
  auto dp = CaptureDatapath::open(agent->options_.capture);
  if (!dp) return fail(std::move(dp.error()));
  agent->datapath_ = std::move(*dp);
  agent->datapath_->setTrace(false);  // a crashed agent may have left tracing on
  auto pods = loadPods(agent->options_.stateDir + "/pods.json");
  if (!pods) return fail(std::move(pods.error()).context("agent state"));
  agent->pods_ = std::move(*pods);
  SLUICE_TRY(agent->reconcileAtStart(), "reconcile");
  return agent;
}

// After a restart the kernel (pins) and the state file should agree; where they don't, the
// pod's namespace decides: a pod whose namespace is gone is removed everywhere, a kernel entry
// that no recorded pod owns is removed.
Status Agent::reconcileAtStart() {
  std::lock_guard lock(mu_);
  std::vector<PodRecord> kept;
  for (auto& pod : pods_) {
    if (pod.optedOut) {
      if (fs::exists(pod.netnsPath)) kept.push_back(pod);
      continue;
    }
    if (pod.closing) {
      // Kept closed until its namespace is gone (collectClosedPods), as before the restart.
      auto gone = datapath_->namespaceGone(pod.netnsCookie);
      if (gone && *gone) {
        (void)datapath_->removePod(pod.netnsCookie);
        continue;
      }
      (void)datapath_->closePod(pod.netnsCookie);
      kept.push_back(pod);
      continue;
    }
    auto netns = openNetns(pod.netnsPath);
    auto cookie = netns ? netnsCookie(netns->get()) : Result<uint64_t>(fail("gone"));
    if (!cookie || *cookie != pod.netnsCookie) {
      spdlog::info("pod {} is gone (netns {}): removing its capture", pod.key(), pod.netnsPath);
      (void)datapath_->removePod(pod.netnsCookie);
      continue;
    }
    // Pods enrolled by an agent before this one may lack it (idempotent for the others).
    if (auto delivery = enableTransparentDelivery(netns->get(), transparentDelivery()); !delivery) {
      spdlog::warn("pod {}: {} (its app sees the tunnel's address instead of its clients')", pod.key(),
                   delivery.error().message());
    }
    kept.push_back(pod);
  }
  pods_ = std::move(kept);
  for (uint64_t cookie : datapath_->installedPods()) {
    bool owned = std::any_of(pods_.begin(), pods_.end(), [&](const auto& p) { return p.netnsCookie == cookie; });
    if (!owned) {
      spdlog::warn("kernel capture state for netns {} has no pod: removing it", cookie);
      (void)datapath_->removePod(cookie);
    }
  }
  spdlog::info("agent for {} holds {} pods after reconciliation", options_.node, pods_.size());
  return persist();
}

TransparentDelivery Agent::transparentDelivery() const {
  return {.mark = options_.capture.deliveryMark, .table = SLUICE_DELIVERY_ROUTE_TABLE, .rulePriority = SLUICE_DELIVERY_RULE_PRIORITY};
}

Status Agent::persist() { return savePods(options_.stateDir + "/pods.json", pods_); }

PodRecord* Agent::findByContainer(const std::string& containerId) {
  for (auto& pod : pods_)
    if (pod.containerId == containerId) return &pod;
  return nullptr;
}

PodRecord* Agent::findByKey(const std::string& key) {
  for (auto& pod : pods_)
    if (pod.key() == key) return &pod;
  return nullptr;
}

PodRecord Agent::recordFor(const CniPodRequest& request) const {
  PodRecord pod;
  pod.uid = request.uid.empty() ? request.containerId : request.uid;
  pod.name = request.name;
  pod.ns = request.ns;
  pod.containerId = request.containerId;
  pod.netnsPath = request.netnsPath;
  pod.addresses = request.addresses;
  return pod;
}

Status Agent::enrollWithTunnel(const PodRecord& pod, int netnsFd) {
  auto ack = tunnel_.request(addRequest(pod), netnsFd, options_.ackTimeout);
  if (!ack) return fail(std::move(ack.error()));
  if (!ack->error.empty()) return fail("the tunnel refused the pod: " + ack->error);
  if (ack->inbound.size() != 1) return fail("the tunnel sent no inbound listener for the pod");
  // The socket map holds its own reference; ours closes when `ack` goes away.
  SLUICE_TRY(datapath_->setInboundListener(pod.netnsCookie, AF_INET, ack->inbound[0].get()), "inbound capture");
  SLUICE_TRY(datapath_->setInboundListener(pod.netnsCookie, AF_INET6, ack->inbound[0].get()), "inbound capture");
  return {};
}

Status Agent::addPod(const CniPodRequest& request) {
  if (request.ns.empty() || request.name.empty()) {
    return fail("CNI_ARGS lacks K8S_POD_NAMESPACE / K8S_POD_NAME: cannot tell which pod this is");
  }
  PodRecord pod = recordFor(request);
  auto metadata = options_.podMetadata(pod.ns, pod.name, pod.uid == pod.containerId ? std::string() : pod.uid);
  if (!metadata) return fail(std::move(metadata.error()).context("pod metadata"));
  pod.serviceAccount = metadata->serviceAccount;
  pod.labels = std::move(metadata->labels);
  pod.annotations = std::move(metadata->annotations);
  auto plan = planPodCapture(specOf(pod));
  if (!plan) return fail(std::move(plan.error()).context("pod " + pod.key()));

  std::unique_lock lock(mu_);
  if (PodRecord* existing = findByContainer(pod.containerId)) {
    if (existing->closing) return fail(fmt::format("container {} was removed (DEL) and is still closing", pod.containerId));
    // A repeated ADD (the runtime retried): already done.
    if (existing->netnsPath == pod.netnsPath) return {};
    return fail(fmt::format("container {} is already enrolled with another namespace", pod.containerId));
  }
  if (plan->optedOut) {
    pod.optedOut = true;
    pod.optOutReason = plan->optOutReason;
    pods_.push_back(pod);
    spdlog::info("pod {} opted out of capture ({})", pod.key(), pod.optOutReason);
    return persist();
  }
  auto netns = openNetns(pod.netnsPath);
  if (!netns) return fail(std::move(netns.error()));
  auto cookie = netnsCookie(netns->get());
  if (!cookie) return fail(std::move(cookie.error()));
  pod.netnsCookie = *cookie;

  // Waiting for a tunnel must not hold up other requests.
  lock.unlock();
  if (!tunnel_.waitConnected(options_.tunnelWait)) {
    return fail(fmt::format("no tunnel (ztunnel) connected to the agent on {} within {} ms: pod {} "
                            "cannot be captured, so it is not started",
                            options_.node, options_.tunnelWait.count(), pod.key()));
  }
  lock.lock();
  if (findByContainer(pod.containerId) != nullptr) return {};  // enrolled meanwhile by a retry
  SLUICE_TRY(enableTransparentDelivery(netns->get(), transparentDelivery()), "enroll " + pod.key());
  SLUICE_TRY(datapath_->installPod(pod.netnsCookie, netns->get(), *plan), "install capture of " + pod.key());
  auto undo = [&](Error error) {
    (void)datapath_->removePod(pod.netnsCookie);
    return fail(std::move(error).context("enroll " + pod.key()));
  };
  if (auto enrolled = enrollWithTunnel(pod, netns->get()); !enrolled) return undo(std::move(enrolled.error()));
  if (auto on = datapath_->setRedirect(pod.netnsCookie, true); !on) return undo(std::move(on.error()));
  pods_.push_back(pod);
  if (auto saved = persist(); !saved) {
    pods_.pop_back();
    return undo(std::move(saved.error()));
  }
  spdlog::info("pod {} enrolled (netns cookie {}, {})", pod.key(), pod.netnsCookie, fmt::join(pod.addresses, ", "));
  return {};
}

Status Agent::delPod(const CniPodRequest& request) {
  std::lock_guard lock(mu_);
  PodRecord* found = findByContainer(request.containerId);
  if (found == nullptr || found->closing) return {};  // DEL is idempotent: nothing (left) to do
  if (found->optedOut) {
    spdlog::info("pod {} removed", found->key());
    pods_.erase(pods_.begin() + (found - pods_.data()));
    return persist();
  }
  // The namespace may outlive DEL (a container still stopping, the runtime's own order): the
  // pod is closed, not opened, until the namespace is gone (collectClosedPods).
  SLUICE_TRY(datapath_->closePod(found->netnsCookie), "close capture of " + found->key());
  found->closing = true;
  PodRecord pod = *found;
  zds::v1::WorkloadRequest del;
  del.mutable_del()->set_uid(pod.uid);
  if (tunnel_.connected()) {
    auto ack = tunnel_.request(del, -1, options_.ackTimeout);
    // A tunnel that can't be told now learns it at its next replay (the pod is absent).
    if (!ack) spdlog::warn("pod {}: tunnel not told of removal: {}", pod.key(), ack.error().message());
  }
  spdlog::info("pod {} removed; its namespace stays closed to plaintext until it is gone", pod.key());
  return persist();
}

void Agent::collectClosedPods() {
  std::lock_guard lock(mu_);
  bool changed = false;
  for (auto it = pods_.begin(); it != pods_.end();) {
    if (!it->closing) {
      ++it;
      continue;
    }
    auto gone = datapath_->namespaceGone(it->netnsCookie);
    if (!gone) spdlog::warn("pod {}: {}", it->key(), gone.error().message());
    if (!gone || !*gone) {
      ++it;
      continue;
    }
    if (auto removed = datapath_->removePod(it->netnsCookie); !removed) {
      spdlog::warn("pod {}: {}", it->key(), removed.error().message());
    }
    spdlog::info("pod {}: its namespace is gone, capture state removed", it->key());
    it = pods_.erase(it);
    changed = true;
  }
  if (changed) (void)persist();
}

Status Agent::checkPod(const CniPodRequest& request) {
  std::lock_guard lock(mu_);
  PodRecord* pod = findByContainer(request.containerId);
  if (pod == nullptr) return fail(fmt::format("container {} is not known to the agent", request.containerId));
  if (pod->closing) return fail(fmt::format("pod {} was removed (DEL)", pod->key()));
  if (pod->optedOut) return {};
  auto config = datapath_->podConfig(pod->netnsCookie);
  if (!config || !*config || !((*config)->flags & SLUICE_POD_REDIRECT)) {
    return fail(fmt::format("pod {} is enrolled but its redirection is not on", pod->key()));
  }
  return {};
}

Status Agent::tunnelConnected(UniqueFd connection) {
  std::lock_guard lock(mu_);
  // Closed on every path below; told it is replaced only once the new tunnel has every pod (a
  // failed replay leaves it connected to nobody: it reconnects and gets a replay of its own).
  UniqueFd previous = tunnel_.attach(std::move(connection));
  tunnelReplayed_ = false;
  ++replays_;
  int replayed = 0;
  for (const auto& pod : pods_) {
    if (pod.optedOut || pod.closing) continue;
    auto netns = openNetns(pod.netnsPath);
    if (!netns) {
      // The pod exists in our records but its namespace can't be opened right now: ask the
      // tunnel to keep what it has rather than tear the pod down.
      zds::v1::WorkloadRequest keep;
      keep.mutable_keep()->set_uid(pod.uid);
      auto ack = tunnel_.request(keep, -1, options_.ackTimeout);
      if (!ack) return fail(std::move(ack.error()).context("replay"));
      continue;
    }
    if (auto enrolled = enrollWithTunnel(pod, netns->get()); !enrolled) {
      return fail(std::move(enrolled.error()).context("replay " + pod.key()));
    }
    ++replayed;
  }
  zds::v1::WorkloadRequest done;
  done.mutable_snapshot_sent();
  auto ack = tunnel_.request(done, -1, options_.ackTimeout);
  if (!ack) return fail(std::move(ack.error()).context("replay"));
  tunnelReplayed_ = true;
  spdlog::info("tunnel connected (pid {}): replayed {} pods", tunnel_.peerPid(), replayed);
  if (previous) {
    // Every pod's listeners of the new tunnel exist and the inbound map names them: the old
    // tunnel may let go (see zds.proto Replaced).
    if (auto retired = TunnelLink::retire(std::move(previous), options_.ackTimeout); !retired) {
      spdlog::warn("{}", retired.error().message());
    } else {
      ++handovers_;
      spdlog::info("the previous tunnel handed every pod over and drains");
    }
  }
  return {};
}

json Agent::podJson(const PodRecord& pod) {
  json j = toJson(pod);
  j["redirect"] = false;
  if (!pod.optedOut) {
    auto config = datapath_->podConfig(pod.netnsCookie);
    j["redirect"] = config && *config && ((*config)->flags & SLUICE_POD_REDIRECT);
    json counters = json::object();
    if (auto c = datapath_->counters(pod.netnsCookie)) {
      for (int i = 0; i < SLUICE_CTR_MAX; ++i) counters[reasonName(i)] = c->value[i];
    }
    j["counters"] = counters;
  }
  return j;
}

json Agent::status() {
  json maps = json::array();
  for (const auto& fill : datapath_->mapFill()) {
    maps.push_back({{"name", fill.name}, {"entries", fill.entries}, {"maxEntries", fill.maxEntries}});
  }
  json attach = json::array();
  for (const auto& a : datapath_->attachPoints()) {
    attach.push_back({{"program", a.program}, {"target", a.target}, {"pin", a.pin}});
  }
  std::lock_guard lock(mu_);
  return {{"node", options_.node},
          {"tunnelConnected", tunnel_.connected()},
          {"tunnelPid", tunnel_.peerPid()},
          {"tunnelReplayed", tunnelReplayed_},
          {"tunnelReplays", replays_},
          {"tunnelHandovers", handovers_},
          {"traceSubscribers", traceSubscribers_},
          {"adoptedPins", datapath_->adopted()},
          {"tunnelMark", options_.capture.tunnelMark},
          {"pinDir", options_.capture.pinDir},
          {"cgroup", options_.capture.cgroupPath},
          {"pods", pods_.size()},
          {"attachPoints", attach},
          {"maps", maps}};
}

json Agent::pods() {
  std::lock_guard lock(mu_);
  json out = json::array();
  for (const auto& pod : pods_) out.push_back(podJson(pod));
  return out;
}

Result<json> Agent::pod(const std::string& key) {
  std::lock_guard lock(mu_);
  PodRecord* pod = findByKey(key);
  if (pod == nullptr) return fail(fmt::format("no pod {} on node {}", key, options_.node));
  return podJson(*pod);
}

Result<json> Agent::explain(const std::string& key, const SocketAddress& to) {
  std::lock_guard lock(mu_);
  PodRecord* pod = findByKey(key);
  if (pod == nullptr) {
    return json{{"pod", key}, {"to", to.toString()}, {"redirected", false},
                {"reason", "not_captured"}, {"why", fmt::format("no pod {} is enrolled on node {}", key, options_.node)}};
  }
  auto plan = planPodCapture(specOf(*pod));
  if (!plan) return fail(std::move(plan.error()));
  bool on = false;
  if (!pod->optedOut) {
    auto config = datapath_->podConfig(pod->netnsCookie);
    on = config && *config && ((*config)->flags & SLUICE_POD_REDIRECT);
  }
  auto verdict = explainOutbound(*plan, on, to);
  return json{{"pod", key}, {"to", to.toString()}, {"redirected", verdict.redirected},
              {"reason", reasonName(verdict.reason)}, {"why", verdict.why}};
}

void Agent::traceSubscribe() {
  std::lock_guard lock(mu_);
  if (traceSubscribers_++ == 0) datapath_->setTrace(true);
}

void Agent::traceUnsubscribe() {
  std::lock_guard lock(mu_);
  if (--traceSubscribers_ == 0) datapath_->setTrace(false);
}

std::string Agent::podKeyByCookie(uint64_t cookie) {
  std::lock_guard lock(mu_);
  for (const auto& pod : pods_)
    if (pod.netnsCookie == cookie && !pod.optedOut) return pod.key();
  return "";
}

}  // namespace sluice::agent
