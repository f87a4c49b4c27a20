// A data-plane worker: one thread, one io_uring, one provided-buffer ring. It owns its pods'
// listeners and every connection they accept; a connection never leaves its worker, and both of
// its sockets are served by the same ring (no cross-CPU hand-off per byte).
//
// Other threads talk to a worker only through post(): a task queue drained when the worker's
// eventfd read completes. Nothing else is shared, except the pods' atomic counters and the
// immutable configuration snapshot.
//
// Relay rules (per connection, per direction):
//   - at most one receive in flight, into a buffer the kernel picks from the ring; received
//     chunks queue (up to DirectionState::kDepth) and are sent strictly in order, the next
//     receive overlapping the current send; with the queue full the tunnel stops reading, so a
//     slow reader stops the fast writer (backpressure; memory per connection is bounded by
//     kDepth buffers per direction and is zero while idle);
//   - EOF from one side becomes shutdown(SHUT_WR) on the other (half-close carried across);
//   - an error or reset on either side resets both (SO_LINGER 0);
//   - descriptors are closed only when no operation on them is in flight.
//
// HBONE (worker_hbone.cc): a relay's one side may be a CONNECT stream on a Tunnel (one TLS +
// HTTP/2 connection: a pod's 15008 server side, or a pooled client). The stream side has no
// io_uring operations of its own; the same rules hold, with the stream's flow-control window as
// the backpressure and END_STREAM / RST_STREAM as half-close and reset.
//
// Memory rule: io_uring may read a pointer given at prep until the operation completes, so
// everything handed to it lives in a slot (a deque: slots never move) or on the heap.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include "capture/orig_dst_table.h"
#include "hbone/hbone_connection.h"
#include "identity/certificate_manager.h"
#include "engine/op_token.h"
#include "engine/ring.h"
#include "proxy/config_snapshot.h"
#include "proxy/pod_runtime.h"
#include "sluice/common/socket_address.h"

namespace sluice::ztunnel {

enum class ListenerKind { kOutbound, kInbound, kHbone };

struct WorkerOptions {
  int index = 0;
  unsigned ringEntries = 1024;
  uint32_t bufferCount = 512;
  uint32_t bufferSize = 64 * 1024;
  uint32_t mark = 0;  // SO_MARK of every upstream socket
  std::chrono::milliseconds connectTimeout{10000};
  std::chrono::milliseconds idleTimeout{std::chrono::hours(1)};
  std::chrono::milliseconds drainTimeout{30000};
  std::string trustDomain = "cluster.local";  // HBONE peers must prove an identity in it
  std::chrono::milliseconds poolIdleTimeout{30000};  // an HBONE client connection without streams
  hbone::SessionLimits hboneLimits;
};

// What a worker reports for /config_dump.
struct ConnectionInfo {
  std::string pod;
  std::string direction;
  std::string peer, target;
  std::string state;
  uint64_t bytesFromClient = 0, bytesToClient = 0;
  std::string protocol = "TCP";  // "HBONE" when the tunnel side is an HBONE stream
  std::string peerIdentity;      // HBONE: the verified identity of the other end
};

struct PoolInfo {
  std::string pod, peer, peerIdentity, role;  // role: "client" or "server"
  size_t streams = 0;
  bool established = false;
};

inline constexpr uint32_t kNoHboneTunnel = UINT32_MAX;

// A relay whose one side is an HBONE stream instead of a socket. The socket side works as
// in a plain relay; the stream side has no io_uring operations of its own: bytes for it go
// into the stream (ConnectSession::write) and bytes from it arrive as session events into
// `fromTunnel`, from where they are sent to the socket.
struct HboneStreamSide {
  uint32_t tunnel = kNoHboneTunnel;
  int32_t stream = 0;
  bool isUp = false;         // the stream is the upstream side (outbound) or downstream (inbound)
  std::string fromTunnel;    // received from the stream, being sent to the socket
  size_t fromTunnelOffset = 0;
  bool sendingFromTunnel = false;
  bool blocked = false;      // the stream's queue is above its high water: not reading the socket
  bool responded = false;    // server: the CONNECT was answered
  int status = 0;            // server: with this status
};

class Worker {
 public:
  // `certificates` may be null: no identities on this node, so no HBONE (plaintext only).
  Worker(WorkerOptions options, const SnapshotStore& config, const agent::OrigDstTable* origDst,
         const CertificateManager* certificates = nullptr);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Sets up the ring and starts the thread; fails when the ring can't be created.
  Status start();
  void stop();
  std::string features() const { return features_; }

  // Runs `task` on the worker thread.
  void post(std::function<void()> task);

  // Worker-thread only (call through post()).
  void addListener(UniqueFd fd, ListenerKind kind, std::shared_ptr<PodRuntime> pod);
  // Stops the pod's listeners; its connections drain until the drain timeout, then are reset.
  void drainPod(const std::shared_ptr<PodRuntime>& pod);

  // Snapshot of live connections (thread-safe; blocks until the worker answers).
  std::vector<ConnectionInfo> connections();
  std::vector<PoolInfo> hboneConnections();  // thread-safe; blocks likewise
  size_t liveConnections() const { return live_.load(); }

 private:
  // One direction of a relay. Received chunks queue here in order; only the head is being
  // sent, so bytes leave in the order they came. Up to kDepth chunks may wait: the next receive
  // overlaps the current send (pipelining), and a slow reader still stops the tunnel reading
  // once kDepth buffers are queued (backpressure; memory bounded per connection).
  struct DirectionState {
    static constexpr int kDepth = 4;
    struct Chunk {
      uint16_t buffer = 0;
      uint32_t length = 0;
    };
    Chunk queue[kDepth];
    int head = 0, count = 0;
    uint32_t offset = 0;  // bytes of the head chunk already sent
    bool recvArmed = false;
    bool sending = false;   // a send of the head chunk is in flight
    bool starved = false;   // waiting for a free buffer
    bool eof = false;       // the source sent FIN
    bool shutdownSent = false;
    bool shutdownDone = false;
    uint64_t bytes = 0;
    Chunk& front() { return queue[head]; }
  };
  struct Listener {
    int fd = -1;
    ListenerKind kind;
    std::shared_ptr<PodRuntime> pod;
    bool closing = false;
  };
  static constexpr uint32_t kNoTunnel = kNoHboneTunnel;
  struct Relay {
    // Declared so std::optional<Relay> sees a default constructor while Worker is still
    // incomplete (clang evaluates that before the member initializers below are parsed).
    Relay() {}
    std::shared_ptr<PodRuntime> pod;
    Direction direction;
    int down = -1, up = -1;
    SocketAddress peer, target;
    bool connected = false;
    bool aborting = false;
    bool counted = false;  // counted as opened (so it is counted as closed once)
    int inflight = 0;
    DirectionState toUp, toDown;
    std::chrono::steady_clock::time_point lastActivity;
    __kernel_timespec connectTimeout{};
    HboneStreamSide hbone;
    std::string peerIdentity;
    bool isHbone() const { return hbone.tunnel != kNoTunnel; }
    // The socket side of an HBONE relay.
    int socket() const { return hbone.isUp ? down : up; }
  };
  // One HBONE connection (TLS + HTTP/2) over one socket: a server one accepted on a pod's 15008,
  // or a client one this worker dialled to a peer's 15008 and pools for later streams.
  struct Tunnel {
    Tunnel() {}  // see Relay()
    std::shared_ptr<PodRuntime> pod;
    bool server = false;
    int fd = -1;
    std::unique_ptr<hbone::HboneConnection> conn;
    std::string expectedPeer;  // client: the identity the destination must prove
    std::string peerIdentity;  // once verified
    std::string poolKey;       // client
    SocketAddress peer;
    bool connected = false, verified = false, recvArmed = false, sending = false, aborting = false;
    bool starved = false;     // a receive found no free buffer
    bool flushAgain = false;  // a flush was asked for while one was running
    int busy = 0;             // > 0 while a flush or abort walks the connection: never freed then
    int inflight = 0;
    std::string out, sendBuf;  // ciphertext waiting / in flight
    size_t sendOffset = 0;
    std::map<int32_t, uint32_t> streams;  // stream -> relay slot
    std::chrono::steady_clock::time_point lastActivity;
    __kernel_timespec connectTimeout{};
  };
  struct Slot {
    uint32_t generation = 0;
    std::optional<Listener> listener;
    std::optional<Relay> relay;
    std::optional<Tunnel> tunnel;
  };

  // Runs `view` on the worker thread and waits for its result (admin views only).
  template <typename View>
  auto ask(View view) -> decltype(view()) {
    std::promise<decltype(view())> promise;
    auto future = promise.get_future();
    post([&] { promise.set_value(view()); });
    return future.get();
  }
  void run();
  void handle(io_uring_cqe* cqe);
  uint32_t allocSlot();
  void freeSlot(uint32_t slot);
  uint64_t token(Op op, uint32_t slot) const { return OpToken{op, slots_[slot].generation, slot}.encode(); }

  void armWake();
  void armTick();
  void armAccept(uint32_t slot);
  void onAccept(uint32_t slot, int res, uint32_t flags);
  void startRelay(const Listener& listener, int fd);
  void onConnect(uint32_t slot, int res);
  void armRecv(uint32_t slot, bool fromDown);
  void onRecv(uint32_t slot, bool fromDown, int res, uint32_t flags);
  void submitSend(uint32_t slot, bool toUp);
  void onSend(uint32_t slot, bool toUp, int res);
  void onShutdown(uint32_t slot, bool up, int res);
  void submitShutdown(uint32_t slot, bool toUp);
  void abortRelay(uint32_t slot, bool reset);
  void maybeFinish(uint32_t slot);
  void retryStarved();
  void onTick();
  void fail(const std::shared_ptr<PodRuntime>& pod, FailReason reason);
  int upstreamSocket(const PodRuntime& pod, int family);
  void refuse(const std::shared_ptr<PodRuntime>& pod, int fd, FailReason reason);
  uint32_t newRelay(const std::shared_ptr<PodRuntime>& pod, Direction direction, int down, int up,
                    const SocketAddress& peer, const SocketAddress& target);
  void submitRelayConnect(uint32_t slot);
  // connect() linked to a timeout of options_.connectTimeout (kept in `*timeout`, which must
  // live until both complete); both completions count in the caller's in-flight total.
  void submitConnect(uint32_t slot, int fd, const SocketAddress& to, __kernel_timespec* timeout, Op connectOp,
                     Op timeoutOp);

  // HBONE (worker_hbone.cc).
  void startHboneServer(const Listener& listener, int fd);
  void startHboneOutbound(const std::shared_ptr<PodRuntime>& pod, int fd, const SocketAddress& peer,
                          const SocketAddress& target, const WorkloadEntry& workload);
  uint32_t dialTunnel(const std::shared_ptr<PodRuntime>& pod, const WorkloadCertificate& certificate,
                      const SocketAddress& target, const std::string& expectedPeer, const std::string& poolKey);
  void armTunnelRecv(uint32_t slot);
  void onTunnelConnect(uint32_t slot, int res);
  void onTunnelRecv(uint32_t slot, int res, uint32_t flags);
  void onTunnelSend(uint32_t slot, int res);
  void flushTunnel(uint32_t slot);
  bool handleTunnelEvents(uint32_t slot);  // whether there were any
  void onHboneRequest(uint32_t tunnelSlot, int32_t stream);
  void respondStream(uint32_t relaySlot, int status);
  void deliverFromTunnel(uint32_t relaySlot);
  void onSendFromTunnel(uint32_t relaySlot, int res);
  void forwardToTunnel(uint32_t relaySlot, const uint8_t* data, size_t length);
  void endTowardsTunnel(uint32_t relaySlot);
  // Resets every stream's relay and closes the connection; `reason` is counted (none for an
  // orderly close: the peer ended it, or an idle pooled connection is let go).
  void abortTunnel(uint32_t slot, std::optional<FailReason> reason);
  void maybeFinishTunnel(uint32_t slot);
  void detachStream(Relay& r);
  std::string identityVerdict(const Tunnel& t, const std::string& identity) const;

  WorkerOptions options_;
  const SnapshotStore& config_;
  const agent::OrigDstTable* origDst_;
  const CertificateManager* certificates_;
  std::map<std::string, std::vector<uint32_t>> pool_;  // pool key -> client tunnel slots
  std::optional<Ring> ring_;
  std::optional<BufferRing> buffers_;
  std::string features_;
  UniqueFd wakeFd_, hostNetns_;
  uint64_t wakeValue_ = 0;
  __kernel_timespec tickInterval_{1, 0};
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::mutex tasksMutex_;
  std::vector<std::function<void()>> tasks_;
  // A deque, not a vector: slots never move. io_uring holds pointers into them from prep to
  // completion (send buffers, short strings stored inline, sockaddrs and timespecs read at
  // submit), and new slots are added between a prep and its submit.
  std::deque<Slot> slots_;
  std::vector<uint32_t> freeSlots_;
  std::vector<uint32_t> starved_;
  std::vector<std::pair<std::weak_ptr<PodRuntime>, std::chrono::steady_clock::time_point>> draining_;
  std::atomic<size_t> live_{0};
  std::mt19937_64 random_{std::random_device{}()};  // weighted splits and random load balancing
  uint64_t sequence_ = 0;                             // round robin
};

}  // namespace sluice::ztunnel
