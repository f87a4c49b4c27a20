// A socket as a relay endpoint, driven by io_uring on its owner's behalf. At most one receive,
// one send and one connect are in flight at a time; their completions come to the owning
// handler, which passes them on with onCompletion() (op relative to `opBase`). A half-close is
// a direct shutdown(2), not an io_uring operation: io_uring always hands IORING_OP_SHUTDOWN to
// an io-wq worker thread (a wakeup and two context switches per connection end, on 2 vCPUs
// mostly on the other CPU), and a TCP shutdown never blocks.
//
// Receives use the worker's provided buffers (engine/buffer_pool.h): small ones until a read
// fills one, then large ones until reads are small again. An armed receive holds no buffer
// (the kernel picks one when data arrives), so idle connections cost none. A received buffer
// is charged to the pod's BufferShare until the relay releases the chunk, and a pod whose
// share is spent arms no further receive until its buffers come back: past its share a pod
// gets at most the one buffer per receive already armed.
//
// The descriptor is owned here and closed when the endpoint is destroyed, which the owner does
// only once quiescent(): no operation of ours can then still name it.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>

#include "engine/endpoint.h"
#include "engine/event_loop.h"
#include "sluice/common/socket_address.h"
#include "sluice/common/unique_fd.h"

namespace sluice::ztunnel {

class SocketEndpoint final : public Endpoint {
 public:
  // Operations, relative to opBase (the owner reserves kOpCount codes from opBase).
  enum Op : uint8_t { kRecv = 0, kSend, kConnect, kConnectTimeout, kOpCount };

  SocketEndpoint(EventLoop& loop, IoHandler& handler, EndpointOwner& owner, uint8_t opBase, UniqueFd fd,
                 BufferShare* share);
  ~SocketEndpoint() override;
  // Keeps `resource` while the socket is open and releases it just before the socket closes:
  // a delivery's registration (agent/capture/delivery_table.h) must outlive every packet of
  // the handshake (a SYN-cookie ACK is looked up like a new connection) and must end while the
  // port is still this socket's, so a later delivery on the same port keeps its own.
  void holdWhileOpen(std::shared_ptr<void> resource) { whileOpen_ = std::move(resource); }

  // Starts a connect to `to`, bounded by `timeout`; the owner hears onEndpointConnected().
  // False when it could not even be submitted.
  bool connect(const SocketAddress& to, std::chrono::milliseconds timeout);

  // A socket bound to a port it chose itself (a transparent delivery) can find its 4-tuple
  // still held by an earlier connection the kernel has not finished (connect fails with
  // EADDRNOTAVAIL): `rebind` then makes a fresh socket on another port, with its own
  // registration to hold while open, and the connect is tried again (up to kRebinds times)
  // before the owner hears of a failure.
  struct Rebound {
    UniqueFd fd;
    std::shared_ptr<void> whileOpen;
  };
  static constexpr int kRebinds = 3;
  void rebindOnAddressInUse(std::function<Result<Rebound>()> rebind) { rebind_ = std::move(rebind); }

  IoResult read() override;
  void release(const Chunk& chunk) override;
  IoResult write(std::span<const uint8_t> bytes) override;
  IoResult shutdownWrite() override;
  void abort(bool reset) override;
  bool quiescent() const override { return inflight_ == 0; }
  void close() override;
  void onCompletion(uint8_t op, int res, uint32_t flags) override;
  void onBuffersAvailable() override;

  int fd() const { return fd_.get(); }
  uint8_t opBase() const { return opBase_; }
  // Whether `op` (absolute) is one of this endpoint's.
  bool owns(uint8_t op) const { return op >= opBase_ && op < opBase_ + kOpCount; }

 private:
  io_uring_sqe* prep(Op op);
  void charge(uint32_t bytes);
  void refund(uint32_t bytes);

  EventLoop& loop_;
  IoHandler& handler_;
  EndpointOwner& owner_;
  uint8_t opBase_;
  UniqueFd fd_;
  // Released just before fd_ closes (and destroyed before it): see holdWhileOpen.
  std::shared_ptr<void> whileOpen_;
  std::function<Result<Rebound>()> rebind_;
  int rebinds_ = 0;
  std::chrono::milliseconds connectLimit_{0};
  bool rebindAndConnect();
  BufferShare* share_;
  int inflight_ = 0;
  bool aborted_ = false;
  // Receive: one in flight; its result waits here until read() takes it.
  bool recvArmed_ = false, recvReady_ = false, waitingForBuffers_ = false, eofSeen_ = false;
  bool large_ = false;          // read into large buffers (the transfer is bulk)
  int recvResult_ = 0;
  std::optional<uint16_t> recvBuffer_;
  // Send: the same.
  bool sendArmed_ = false, sendReady_ = false;
  int sendResult_ = 0;
  // Connect: the address and the timeout live here until both completions are in.
  SocketAddress connectTo_;
  __kernel_timespec connectTimeout_{};
};

}  // namespace sluice::ztunnel
