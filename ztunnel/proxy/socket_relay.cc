#include "proxy/socket_relay.h"

#include <sys/socket.h>

#include <spdlog/spdlog.h>

#include "engine/socket_endpoint.h"
#include "proxy/pod_socket_factory.h"

namespace sluice::ztunnel {

void refuse(PodRuntime& pod, UniqueFd fd, FailReason reason) {
  pod.counters.failed[static_cast<size_t>(reason)]++;
  linger l{1, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &l, sizeof(l));
}

Relay& newRelay(WorkerContext& context, RelayInfo info) {
  return context.loop.add<Relay>(context.loop, std::move(info), context.options.idleTimeout, &context.live);
}

void startSocketRelay(WorkerContext& context, RelayInfo info, UniqueFd down, std::shared_ptr<void> lease,
                      const TcpKeepalive* keepalive) {
  PodRuntime& pod = *info.pod;
  // Inbound, the app sees the client's own address (PodSocketFactory::delivery).
  std::shared_ptr<void> registration;
  Result<UniqueFd> up = fail("none");
  if (info.direction == Direction::kInbound) {
    auto delivery = context.sockets.delivery(pod, info.target, info.peer);
    if (delivery) {
      registration = std::move(delivery->registration);
      up = std::move(delivery->fd);
    } else {
      up = fail(std::move(delivery.error()));
    }
  } else {
    up = context.sockets.upstream(pod, info.target.family());
  }
  if (!up) {
    spdlog::warn("{}: upstream socket: {}", pod.key(), up.error().message());
    return refuse(pod, std::move(down), FailReason::kSocketError);
  }
  if (keepalive != nullptr) {
    if (auto set = applyKeepalive(up->get(), *keepalive); !set) {
      spdlog::warn("{}: upstream socket: {}", pod.key(), set.error().message());
      return refuse(pod, std::move(down), FailReason::kSocketError);
    }
  }
  (void)setNoDelay(down.get());
  SocketAddress target = info.target;
  Relay& relay = newRelay(context, std::move(info));
  relay.hold(std::move(lease));
  auto downEndpoint = std::make_unique<SocketEndpoint>(context.loop, relay, relay, Relay::kDownOps, std::move(down), &pod.buffers);
  auto upEndpoint = std::make_unique<SocketEndpoint>(context.loop, relay, relay, Relay::kUpOps, std::move(*up), &pod.buffers);
  if (registration) {
    upEndpoint->holdWhileOpen(std::move(registration));
    upEndpoint->rebindOnAddressInUse(redelivery(context.sockets, relay.info().pod, target, relay.info().peer));
  }
  SocketEndpoint& connecting = *upEndpoint;
  relay.attach(std::move(downEndpoint), std::move(upEndpoint));
  auto timeout = relay.info().connectTimeout.count() > 0 ? relay.info().connectTimeout : context.options.connectTimeout;
  if (!connecting.connect(target, timeout)) {
    relay.onEndpointConnected(connecting, false, FailReason::kSocketError);
  }
}

}  // namespace sluice::ztunnel
