#include "xds/config_client.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <thread>

#include "proxy/snapshot_builder.h"
#include "sluice/discovery/v1/discovery.grpc.pb.h"

namespace sluice::ztunnel {

namespace d1 = sluice::discovery::v1;

std::string ConfigClient::lastError() const {
  std::lock_guard lock(errorMutex_);
  return lastError_;
}

void ConfigClient::run(const std::atomic<bool>& stopping) {
  auto backoff = std::chrono::milliseconds(100);
  while (!stopping) {
    auto stub = d1::Discovery::NewStub(channel_());
    grpc::ClientContext context;
    auto stream = stub->Stream(&context);
    d1::DiscoveryRequest hello;
    hello.set_node(node_);
    for (const auto& [name, r] : resources_) (*hello.mutable_known_versions())[name] = r.version();
    if (!stream->Write(hello)) {
      stream->Finish();
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
      continue;
    }
    // Read() blocks; this wakes it when the tunnel stops.
    std::atomic<bool> streamDone{false};
    std::thread canceller([&] {
      while (!stopping && !streamDone) std::this_thread::sleep_for(std::chrono::milliseconds(50));
      if (stopping) context.TryCancel();
    });
    connected_ = true;
    backoff = std::chrono::milliseconds(100);
    d1::DiscoveryResponse response;
    while (stream->Read(&response)) {
      auto next = resources_;
      for (const auto& r : response.resources()) next[r.name()] = r;
      for (const auto& name : response.removed()) next.erase(name);
      d1::DiscoveryRequest ack;
      ack.set_response_nonce(response.nonce());
      auto snapshot = buildSnapshot(next, traffic_);
      if (snapshot) {
        snapshot->controllerVersion = response.system_version();
        store_.publish(std::move(*snapshot));
        resources_ = std::move(next);
        ++acks_;
        spdlog::info("configuration {} applied: {} resources (+{} -{})", response.system_version(), resources_.size(),
                     response.resources_size(), response.removed_size());
      } else {
        ack.set_error_detail(snapshot.error().message());
        ++nacks_;
        std::lock_guard lock(errorMutex_);
        lastError_ = snapshot.error().message();
        spdlog::warn("configuration {} refused, keeping the last good one: {}", response.system_version(),
                     snapshot.error().message());
      }
      if (!stream->Write(ack)) break;
    }
    connected_ = false;
    streamDone = true;
    canceller.join();
    stream->WritesDone();
    auto status = stream->Finish();
    if (!stopping) {
      spdlog::warn("controller unreachable ({}); serving the last good configuration", status.error_message());
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
    }
  }
}

}  // namespace sluice::ztunnel
