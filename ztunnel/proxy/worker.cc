#include "proxy/worker.h"

#include <spdlog/spdlog.h>

#include "engine/listener.h"
#include "proxy/hbone_server.h"
#include "proxy/inbound_passthrough.h"
#include "proxy/outbound.h"

namespace sluice::ztunnel {

Worker::Worker(WorkerOptions options, const SnapshotStore& config, const agent::OrigDstTable* origDst,
               const CertificateManager* certificates, const PodSocketFactory& sockets, SourceLimits& limits,
               NodeTrafficState* traffic)
    : options_(std::move(options)),
      config_(config),
      origDst_(origDst),
      certificates_(certificates),
      sockets_(sockets),
      limits_(limits),
      traffic_(traffic) {}

Worker::~Worker() { stop(); }

Status Worker::start() {
  // The loop is created on the worker thread itself: SINGLE_ISSUER binds a ring to its creator.
  std::promise<Status> ready;
  auto started = ready.get_future();
  thread_ = std::thread([this, &ready] {
    auto loop = EventLoop::create(options_.loop);
    if (!loop) {
      ready.set_value(std::unexpected(std::move(loop.error())));
      return;
    }
    loop_ = std::move(*loop);
    pool_ = std::make_unique<HbonePool<HboneClient>>(options_.poolIdleTimeout);
    context_ = std::unique_ptr<WorkerContext>(
        new WorkerContext{*loop_, options_, config_, origDst_, certificates_, sockets_, limits_, *pool_, live_,
                          traffic_ ? &traffic_->outliers : nullptr, traffic_ ? &traffic_->retryBudgets : nullptr,
                          traffic_ ? &traffic_->rateLimiters : nullptr, traffic_ ? &traffic_->mirrors : nullptr});
    features_ = loop_->features().describe();
    ready.set_value({});
    loop_->run(stopping_);
  });
  Status status = started.get();
  if (!status) {
    thread_.join();
    return status;
  }
  return {};
}

void Worker::stop() {
  if (!thread_.joinable()) return;
  stopping_ = true;
  post([] {});
  thread_.join();
  // The loop stays alive until the thread is gone, so a post() racing with the stop never
  // finds it destroyed. Handlers (and their sockets) go before the ring.
  loop_.reset();
  context_.reset();
  pool_.reset();
}

void Worker::post(std::function<void()> task) { loop_->post(std::move(task)); }

void Worker::addListener(UniqueFd fd, ListenerKind kind, std::shared_ptr<PodRuntime> pod) {
  if (options_.podBufferShareBytes != 0) pod->buffers.limitBytes = options_.podBufferShareBytes;
  std::unique_ptr<Acceptor> acceptor;
  switch (kind) {
    case ListenerKind::kOutbound: acceptor = std::make_unique<OutboundAcceptor>(*context_, pod); break;
    case ListenerKind::kInbound: acceptor = std::make_unique<InboundPassthroughAcceptor>(*context_, pod); break;
    case ListenerKind::kHbone: acceptor = std::make_unique<HboneServerAcceptor>(*context_, pod); break;
  }
  loop_->add<Listener>(*loop_, std::move(fd), std::move(acceptor), pod.get()).start();
}

void Worker::drainPod(const std::shared_ptr<PodRuntime>& pod) {
  pod->draining = true;
  pod->drainDeadline = loop_->now() + options_.drainTimeout;
  loop_->forEach([&](IoHandler& h) {
    if (auto* listener = dynamic_cast<Listener*>(&h); listener != nullptr && listener->owner() == pod.get()) {
      listener->close();
    }
  });
}

void Worker::handOverPod(const std::shared_ptr<PodRuntime>& pod) {
  pod->handedOver = true;
  drainPod(pod);
  loop_->forEach([&](IoHandler& h) {
    if (auto* link = dynamic_cast<HboneLink*>(&h); link != nullptr && link->pod() == pod) link->handOver();
  });
}

std::vector<ConnectionInfo> Worker::connections() {
  return ask([this] {
    std::vector<ConnectionInfo> out;
    loop_->forEach([&](IoHandler& h) {
      if (auto* relay = dynamic_cast<Relay*>(&h)) out.push_back(relay->describe());
    });
    return out;
  });
}

std::vector<PoolInfo> Worker::hboneConnections() {
  return ask([this] {
    std::vector<PoolInfo> out;
    loop_->forEach([&](IoHandler& h) {
      if (auto* link = dynamic_cast<HboneLink*>(&h)) out.push_back(link->describe());
    });
    return out;
  });
}

size_t Worker::handlers() {
  return ask([this] { return loop_->handlerCount(); });
}

}  // namespace sluice::ztunnel
