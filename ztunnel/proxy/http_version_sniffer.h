// The first stage of a connection to an HTTP port: which HTTP does the app speak? Istio's
// `http` ports carry HTTP/1.1 and HTTP/2 with prior knowledge (h2c) alike, so the tunnel peeks
// at the first bytes (recv with MSG_PEEK: nothing is consumed) and hands the socket to
// HttpOutbound or Http2Outbound, which read the connection from its first byte.
//
// A connection that sends nothing waits here with a peek armed (its idle timeout and its
// pod's drain deadline apply); one that has sent part of the HTTP/2 preface only is peeked
// again every few milliseconds until the rest arrives (clients send the preface in one write,
// so this is rare); after kPrefaceDeadline the HTTP/1.1 proxy takes it (and refuses it).
//
// Invariant: the handler hands the socket over or closes it only when no operation of its own
// is in flight (the kernel may still write into `first_`).
#pragma once

#include <array>
#include <chrono>
#include <memory>

#include <nghttp2/nghttp2.h>

#include "engine/event_loop.h"
#include "proxy/worker_context.h"
#include "sluice/common/socket_address.h"
#include "sluice/common/unique_fd.h"

namespace sluice::ztunnel {

class HttpVersionSniffer final : public IoHandler {
 public:
  static constexpr std::chrono::milliseconds kRepeekAfter{5};
  static constexpr std::chrono::milliseconds kPrefaceDeadline{1000};

  HttpVersionSniffer(WorkerContext& context, std::shared_ptr<PodRuntime> pod, SocketAddress peer, SocketAddress service,
                     UniqueFd fd);
  // After the loop has added the handler (its operations name it).
  void start();

  void onCompletion(uint8_t op, int res, uint32_t flags) override;
  void onTick(std::chrono::steady_clock::time_point now) override;

 private:
  enum Op : uint8_t { kPeek = 1, kPause };
  void peek();
  void pause();
  void close();
  void decide(size_t received);

  WorkerContext& context_;
  std::shared_ptr<PodRuntime> pod_;
  SocketAddress peer_, service_;
  UniqueFd fd_;
  std::array<uint8_t, NGHTTP2_CLIENT_MAGIC_LEN> first_{};  // peeked into: never moves (heap handler)
  __kernel_timespec pauseTime_{};
  std::chrono::steady_clock::time_point accepted_;
  bool inflight_ = false, closing_ = false;
};

}  // namespace sluice::ztunnel
