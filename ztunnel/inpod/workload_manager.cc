#include "inpod/workload_manager.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <thread>
#include <utility>

#include "sluice/common/netns.h"
#include "sluice/common/unix_socket.h"
#include "sluice_capture.h"
#include "sluice/common/pki.h"

namespace sluice::ztunnel {
namespace {

zds::v1::WorkloadResponse ack(const std::string& error = {}) {
  zds::v1::WorkloadResponse response;
  response.mutable_ack()->set_error(error);
  return response;
}

}  // namespace

WorkloadManager::WorkloadManager(std::string zdsSocket, const PodSocketFactory& sockets, std::vector<std::unique_ptr<Worker>>& workers,
                                 CertificateManager* certificates, std::string trustDomain)
    : zdsSocket_(std::move(zdsSocket)), sockets_(sockets), workers_(workers), certificates_(certificates),
      trustDomain_(std::move(trustDomain)) {}

std::vector<std::shared_ptr<PodRuntime>> WorkloadManager::pods() const {
  std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<PodRuntime>> out;
  for (const auto& [_, entry] : pods_) out.push_back(entry.runtime);
  return out;
}

Result<WorkloadManager::PodEntry> WorkloadManager::createPod(const zds::v1::WorkloadInfo& info, UniqueFd netns) {
  auto runtime = std::make_shared<PodRuntime>();
  runtime->uid = info.uid();
  runtime->name = info.name();
  runtime->ns = info.namespace_();
  runtime->serviceAccount = info.service_account();
  // Without certificates (no node credential) the pod has no identity the mesh could verify.
  if (certificates_ != nullptr) {
    runtime->identity = pki::spiffeIdFor(trustDomain_, runtime->ns,
                                         runtime->serviceAccount.empty() ? "default" : runtime->serviceAccount);
  }
  runtime->addresses.assign(info.addresses().begin(), info.addresses().end());
  runtime->labels.insert(info.labels().begin(), info.labels().end());
  auto cookie = netnsCookie(netns.get());
  if (!cookie) return fail(std::move(cookie.error()));
  runtime->netnsCookie = *cookie;
  runtime->netns = std::move(netns);
  runtime->worker = static_cast<int>(nextWorker_++ % workers_.size());

  struct Spec {
    const char* address;
    bool dualStack;
    ListenerKind kind;
  } specs[] = {{"127.0.0.1:15001", false, ListenerKind::kOutbound},
               {"[::1]:15001", false, ListenerKind::kOutbound},
               {"[::]:15006", true, ListenerKind::kInbound},
               {"[::]:15008", true, ListenerKind::kHbone}};
  std::vector<std::pair<UniqueFd, ListenerKind>> listeners;
  PodEntry entry;
  for (const auto& spec : specs) {
    auto fd = sockets_.listener(*runtime, spec.address, spec.dualStack);
    if (!fd) return fail(std::move(fd.error()).context(fmt::format("listener {} of {}", spec.address, runtime->key())));
    if (spec.kind == ListenerKind::kInbound) {
      int copy = ::fcntl(fd->get(), F_DUPFD_CLOEXEC, 0);
      if (copy < 0) return failErrno("dup inbound listener");
      entry.inbound.reset(copy);
    }
    listeners.emplace_back(std::move(*fd), spec.kind);
  }
  // All listen() calls succeeded: connections queue in the backlogs from now on, so the Ack can
  // go out while the worker arms its accepts. Before the first snapshot is complete the accepts
  // wait (until SnapshotSent, see handle()): the listeners share their ports with a running
  // tunnel during an upgrade, and what reaches ours must wait for certificates, not fail.
  Worker& worker = *workers_[static_cast<size_t>(runtime->worker)];
  auto shared = std::make_shared<std::vector<std::pair<UniqueFd, ListenerKind>>>(std::move(listeners));
  auto start = [&worker, shared, runtime] {
    worker.post([&worker, shared, runtime] {
      for (auto& [fd, kind] : *shared) worker.addListener(std::move(fd), kind, runtime);
    });
  };
  if (serving_) {
    start();
  } else {
    notAccepting_.push_back(std::move(start));
  }
  // Fetched now, so the certificate is usually there before the pod's first connection.
  if (certificates_ != nullptr) certificates_->want(runtime->identity);
  entry.runtime = std::move(runtime);
  return entry;
}

void WorkloadManager::removePod(const std::string& uid) {
  PodEntry entry;
  {
    std::lock_guard lock(mutex_);
    auto it = pods_.find(uid);
    if (it == pods_.end()) return;
    entry = std::move(it->second);
    pods_.erase(it);
  }
  spdlog::info("pod {} removed: listeners closed, connections draining", entry.runtime->key());
  Worker& worker = *workers_[static_cast<size_t>(entry.runtime->worker)];
  auto runtime = entry.runtime;
  if (certificates_ != nullptr) certificates_->release(runtime->identity);
  worker.post([&worker, runtime] { worker.drainPod(runtime); });
}

std::string WorkloadManager::missingCertificate() const {
  if (certificates_ == nullptr) return "";
  std::lock_guard lock(mutex_);
  for (const auto& [_, entry] : pods_) {
    if (certificates_->get(entry.runtime->identity) == nullptr) return "the certificate of " + entry.runtime->identity;
  }
  return "";
}

void WorkloadManager::handOverEveryPod() {
  std::map<std::string, PodEntry> pods;
  {
    std::lock_guard lock(mutex_);
    pods.swap(pods_);
  }
  // Our references to the inbound listeners close with `pods`; the workers close theirs, and
  // the kernel moves what waits in each queue to the successor's listener of the same port.
  for (auto& [_, entry] : pods) {
    Worker& worker = *workers_[static_cast<size_t>(entry.runtime->worker)];
    auto runtime = entry.runtime;
    worker.post([&worker, runtime] { worker.handOverPod(runtime); });
  }
  spdlog::info("replaced by a newer tunnel: {} pods handed over, their connections draining", pods.size());
}

std::pair<zds::v1::WorkloadResponse, int> WorkloadManager::handle(const zds::v1::WorkloadRequest& request,
                                                                  std::vector<UniqueFd>& fds) {
  if (request.has_add()) {
    const auto& info = request.add().workload();
    if (info.uid().empty()) return {ack("AddWorkload without a uid"), -1};
    if (fds.size() != 1) return {ack("AddWorkload must carry exactly one network namespace descriptor"), -1};
    seenInReplay_.insert(info.uid());
    {
      std::lock_guard lock(mutex_);
      auto it = pods_.find(info.uid());
      if (it != pods_.end()) {
        // A replayed pod: its listeners already exist; keep them and their connections.
        auto response = ack();
        response.mutable_ack()->set_inbound_listeners(1);
        return {response, it->second.inbound.get()};
      }
    }
    auto entry = createPod(info, std::move(fds[0]));
    if (!entry) {
      spdlog::error("cannot serve pod {}/{}: {}", info.namespace_(), info.name(), entry.error().message());
      return {ack(entry.error().message()), -1};
    }
    int inbound = entry->inbound.get();
    spdlog::info("pod {} served by worker {}", entry->runtime->key(), entry->runtime->worker);
    {
      std::lock_guard lock(mutex_);
      pods_.emplace(info.uid(), std::move(*entry));
    }
    auto response = ack();
    response.mutable_ack()->set_inbound_listeners(1);
    return {response, inbound};
  }
  if (request.has_keep()) {
    seenInReplay_.insert(request.keep().uid());
    return {ack(), -1};
  }
  if (request.has_del()) {
    removePod(request.del().uid());
    return {ack(), -1};
  }
  if (request.has_snapshot_sent()) {
    // Only before the first snapshot: a later replay (the agent restarted) finds the pods served
    // already, and the agent's other requests wait while this one does.
    if (!serving_) {
      auto deadline = std::chrono::steady_clock::now() + kServingWait;
      std::string missing;
      while (!(missing = missingCertificate()).empty() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      if (!missing.empty()) spdlog::warn("serving before {} (waited {} ms)", missing, kServingWait.count());
    }
    serving_ = true;
    for (auto& start : notAccepting_) start();
    notAccepting_.clear();
    std::vector<std::string> gone;
    {
      std::lock_guard lock(mutex_);
      for (const auto& [uid, _] : pods_) {
        if (!seenInReplay_.contains(uid)) gone.push_back(uid);
      }
    }
    for (const auto& uid : gone) removePod(uid);
    snapshotReceived_ = true;
    spdlog::info("agent snapshot complete: {} pods ({} dropped)", pods().size(), gone.size());
    return {ack(), -1};
  }
  if (request.has_replaced()) {
    replacedAt_ = std::chrono::steady_clock::now();
    replaced_ = true;
    handOverEveryPod();
    return {ack(), -1};
  }
  return {ack("unknown request"), -1};
}

void WorkloadManager::run(const std::atomic<bool>& stopping) {
  bool logged = false;
  for (std::string missing; connectCheck_ && !stopping && !(missing = connectCheck_()).empty();) {
    if (!std::exchange(logged, true)) spdlog::info("waiting for {} before connecting to the node agent", missing);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  auto backoff = std::chrono::milliseconds(50);
  while (!stopping) {
    auto conn = connectUnix(zdsSocket_, SOCK_SEQPACKET);
    if (!conn) {
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
      continue;
    }
    backoff = std::chrono::milliseconds(50);
    connected_ = true;
    seenInReplay_.clear();
    spdlog::info("connected to the node agent at {}", zdsSocket_);
    while (!stopping) {
      auto msg = receiveMessage(conn->get(), 64 * 1024, 1, std::chrono::milliseconds(200));
      if (!msg) {
        if (msg.error().code() == ETIMEDOUT) continue;
        spdlog::warn("agent connection: {}", msg.error().message());
        break;
      }
      if (msg->eof) break;
      zds::v1::WorkloadRequest request;
      std::pair<zds::v1::WorkloadResponse, int> reply;
      if (!request.ParseFromString(msg->bytes)) {
        reply = {ack("malformed request"), -1};
      } else {
        reply = handle(request, msg->fds);
      }
      int fds[1] = {reply.second};
      auto sent = sendMessage(conn->get(), reply.first.SerializeAsString(),
                              reply.second >= 0 ? std::span<const int>(fds, 1) : std::span<const int>());
      if (!sent) {
        spdlog::warn("agent connection: {}", sent.error().message());
        break;
      }
      if (replaced_) break;
    }
    connected_ = false;
    if (replaced_) {
      if (onReplaced_) onReplaced_();
      return;  // never again: reconnecting would take the pods back from the successor
    }
    if (!stopping) spdlog::warn("lost the node agent; pods keep being served, reconnecting");
  }
}

}  // namespace sluice::ztunnel
