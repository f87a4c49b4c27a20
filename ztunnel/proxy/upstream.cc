#include "proxy/upstream.h"

#include <fmt/format.h>

#include "engine/socket_endpoint.h"
#include "proxy/hbone_client.h"
#include "proxy/hbone_request.h"
#include "proxy/stream_endpoint.h"
#include "sluice/common/pki.h"

namespace sluice::ztunnel {
namespace {

// A CONNECT for `request` on a pooled connection of `key` that takes streams, or on a new one.
std::expected<std::pair<HboneClient*, int32_t>, UpstreamFailure> connectStream(
    WorkerContext& context, const std::shared_ptr<PodRuntime>& pod, const WorkloadCertificate& certificate,
    const PoolKey& key, const std::string& expected, const http2::ConnectRequest& request) {
  HboneClient* client = context.pool.find(key);
  if (client == nullptr) {
    auto dialled = HboneClient::dial(context, pod, certificate, key, expected);
    if (!dialled) {
      return std::unexpected(UpstreamFailure{FailReason::kSocketError,
                                             fmt::format("HBONE to {}: {}", key.destination, dialled.error().message())});
    }
    client = *dialled;
  }
  auto stream = client->session().connect(request);
  if (!stream) {
    return std::unexpected(UpstreamFailure{FailReason::kHboneProtocol,
                                           fmt::format("HBONE CONNECT to {}: {}", request.authority, stream.error().message())});
  }
  return std::pair{client, *stream};
}

}  // namespace

Result<std::pair<HboneClient*, int32_t>> reopenStream(HboneClient& refusedOn, int32_t stream) {
  const http2::ConnectRequest* refused = refusedOn.session().request(stream);
  if (refused == nullptr) return fail("the refused stream is gone");
  http2::ConnectRequest request = *refused;  // the session forgets it when the stream is released
  WorkerContext& context = refusedOn.context();
  const std::shared_ptr<PodRuntime>& pod = refusedOn.pod();
  auto certificate = context.certificates->get(pod->identity);  // it may have rotated since
  if (!certificate) return fail("no certificate for " + pod->identity);
  auto next = connectStream(context, pod, *certificate, refusedOn.key(), refusedOn.expectedPeer(), request);
  if (!next) return fail(next.error().message);
  return *next;
}

std::expected<OpenedUpstream, UpstreamFailure> openUpstream(WorkerContext& context, const std::shared_ptr<PodRuntime>& pod,
                                                            const UpstreamTarget& t, IoHandler& handler,
                                                            EndpointOwner& owner, uint8_t opBase) {
  if (t.workload && context.certificates != nullptr) {
    auto certificate = context.certificates->get(pod->identity);
    if (!certificate) return std::unexpected(UpstreamFailure{FailReason::kNoCertificate, "no certificate for " + pod->identity});
    std::string expected = pki::spiffeIdFor(context.options.trustDomain, t.workload->ns, t.workload->serviceAccount);
    PoolKey key = poolKey(pod->uid, pod->identity, expected, t.target);
    http2::ConnectRequest request{t.target.toString(), forwardedFor(t.peer), randomTraceparent(context.random)};
    auto opened = connectStream(context, pod, *certificate, key, expected, request);
    if (!opened) return std::unexpected(std::move(opened.error()));
    auto [client, stream] = *opened;
    auto endpoint = std::make_unique<StreamEndpoint>(*client, stream, StreamEndpoint::Side::kClient, owner, pod->counters);
    client->requestFlush();
    return OpenedUpstream{std::move(endpoint), "HBONE", expected};
  }
  auto fd = context.sockets.upstream(*pod, t.target.family());
  if (!fd) return std::unexpected(UpstreamFailure{FailReason::kSocketError, "upstream socket: " + fd.error().message()});
  if (t.keepalive != nullptr) {
    if (auto set = applyKeepalive(fd->get(), *t.keepalive); !set) {
      return std::unexpected(UpstreamFailure{FailReason::kSocketError, "keepalive: " + set.error().message()});
    }
  }
  auto endpoint = std::make_unique<SocketEndpoint>(context.loop, handler, owner, opBase, std::move(*fd), &pod->buffers);
  if (!endpoint->connect(t.target, t.connectTimeout.count() > 0 ? t.connectTimeout : context.options.connectTimeout)) {
    return std::unexpected(UpstreamFailure{FailReason::kSocketError, "connect to " + t.target.toString() + " not submitted"});
  }
  return OpenedUpstream{std::move(endpoint), "TCP", {}};
}

}  // namespace sluice::ztunnel
