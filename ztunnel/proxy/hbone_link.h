// One HBONE connection (TLS 1.3 + HTTP/2 CONNECT streams) over one socket: what the server on
// a pod's 15008 (hbone_server.h) and the pooled client (hbone_client.h) share. It moves
// ciphertext between the socket and the sans-IO HboneConnection, checks the peer's identity
// before any of the peer's frames is looked at, and routes stream events to the relays'
// StreamEndpoints.
//
// Bounds, each against a hostile peer:
//   - the handshake (TLS and identity) must finish within handshakeTimeout of the accept or
//     dial, however slowly the peer trickles bytes;
//   - ciphertext waiting for the socket is capped (maxQueuedCiphertext): above it the link
//     reads nothing more from the peer, so a peer that floods PINGs or requests and never
//     reads gets backpressure, not our memory; frames are produced only below the cap;
//   - stream counts are capped by SETTINGS_MAX_CONCURRENT_STREAMS (SessionLimits).
//
// Lifetime: the link owns its socket. Stream endpoints attach while their relay lives and
// detach when it finishes; when the link closes it tells every attached endpoint first
// (connectionLost), so no endpoint ever holds a pointer to a link that is gone. The link
// retires once closing and no socket operation is in flight; flushing runs once per batch
// (EventLoop::defer), never inside another handler's call.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "engine/event_loop.h"
#include "engine/socket_endpoint.h"
#include "hbone/hbone_connection.h"
#include "proxy/pod_runtime.h"
#include "proxy/worker_context.h"

namespace sluice::ztunnel {

class StreamEndpoint;

// What /config_dump shows of an HBONE connection.
struct PoolInfo {
  std::string pod, peer, peerIdentity, role;  // role: "client" or "server"
  size_t streams = 0;
  bool established = false;
};

class HboneLink : public IoHandler, public EndpointOwner {
 public:
  HboneLink(WorkerContext& context, std::shared_ptr<PodRuntime> pod, UniqueFd fd,
            std::unique_ptr<hbone::HboneConnection> connection, SocketAddress peer);
  ~HboneLink() override;

  http2::Http2Session& session() { return connection_->session(); }
  const http2::Http2Session& session() const { return connection_->session(); }
  void attach(int32_t stream, StreamEndpoint* endpoint);
  // The endpoint's relay finished: the stream is forgotten (its unconsumed window returned).
  void detach(int32_t stream);
  // Session state changed (frames to send, windows to reopen): flush after this batch.
  void requestFlush();
  // Closes the connection: every stream's relay is aborted; `reason` is counted (none for an
  // orderly close: the peer ended it, or an idle connection is let go).
  void abort(std::optional<FailReason> reason);
  bool closing() const { return aborting_; }
  // A newer tunnel took the pod over: a server asks its peer to open new streams elsewhere.
  virtual void handOver() {}
  size_t openStreams() const { return streams_.size(); }
  std::chrono::steady_clock::time_point lastUsed() const { return lastUsed_; }
  const std::shared_ptr<PodRuntime>& pod() const { return pod_; }
  virtual PoolInfo describe() const = 0;

  void onCompletion(uint8_t op, int res, uint32_t flags) override;
  void onDeferred() override;
  void onTick(std::chrono::steady_clock::time_point now) override;
  void onBuffersAvailable() override;
  void onEndpointProgress() override;
  void onEndpointConnected(Endpoint& endpoint, bool ok, FailReason reason) override;

 protected:
  // "" when the identity the peer proved is acceptable, else why not.
  virtual std::string checkPeer(const std::string& identity) const = 0;
  // Server: a CONNECT request arrived on `stream`.
  virtual void onRequest(int32_t /*stream*/) {}
  // Called once when the link starts closing (a client leaves its pool).
  virtual void onClosing() {}
  // Whether the link has been idle too long (checked every tick once verified).
  virtual bool idleExpired(std::chrono::steady_clock::time_point now) const = 0;

  // The TCP connection is up (accepted, or a dial completed): start reading and flushing.
  void connected();
  void count(FailReason reason) { pod_->counters.failed[static_cast<size_t>(reason)]++; }

  WorkerContext& context_;
  std::shared_ptr<PodRuntime> pod_;
  std::unique_ptr<hbone::HboneConnection> connection_;
  SocketEndpoint socket_;
  SocketAddress peer_;
  std::string peerIdentity_;  // once verified
  hbone::TlsChannel::Issuance peerIssuance_;  // who the peer's certificate was issued to, and when
  bool verified_ = false;
  std::map<int32_t, StreamEndpoint*> streams_;

 private:
  void pump();
  bool receive(const Chunk& chunk);  // false when the link closed
  // "" unless the peer's certificate was issued to a node revoked by the current configuration.
  std::string revokedIssuer() const;
  void handleEvents();
  void maybeFinish();

  std::chrono::steady_clock::time_point createdAt_, lastUsed_;
  std::string out_;      // ciphertext produced, waiting for the socket
  std::string sending_;  // ciphertext the socket is sending (io_uring holds a pointer into it)
  size_t sendingOffset_ = 0;
  bool connected_ = false, aborting_ = false, finished_ = false;
};

}  // namespace sluice::ztunnel
