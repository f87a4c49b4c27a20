// What every per-pod acceptor (outbound, inbound passthrough, HBONE server) holds: its
// worker's context and the pod whose listener it serves.
#pragma once

#include <memory>

#include "engine/listener.h"
#include "proxy/worker_context.h"

namespace sluice::ztunnel {

class PodAcceptor : public Acceptor {
 public:
  PodAcceptor(WorkerContext& context, std::shared_ptr<PodRuntime> pod) : context_(context), pod_(std::move(pod)) {}

 protected:
  WorkerContext& context_;
  std::shared_ptr<PodRuntime> pod_;
};

}  // namespace sluice::ztunnel
