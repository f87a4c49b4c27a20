// The event loop of one worker thread: it owns the io_uring, the receive buffers, the task queue
// other threads post to, a one-second tick, and the table of handlers that completions go to.
//
// Handlers: every connection, listener and HBONE link is one IoHandler object in the table,
// named by a generation-checked HandlerId. Submissions carry (slot, generation, op) as
// user_data; a completion for a retired handler is stale and only gives back the buffer it
// may carry.
//
// Lifetime rule (why no handler needs "busy" counters): retire() takes a handler out of the
// table at once, but the object is destroyed only after the current completion batch, so code
// further up the stack that still holds a reference stays valid until it returns. A handler
// retires itself only when none of its operations is in flight, because the kernel may read
// memory the handler gave it (send buffers, sockaddrs, timespecs) until the completion arrives.
//
// Memory rule: io_uring may read a pointer given at prep until the operation completes, so
// everything handed to it lives inside a handler (heap objects that never move) or the loop.
//
// Deferred work: defer(handler) runs handler.onDeferred() once after the current batch (before
// the next submit): an HBONE link flushes its ciphertext once per batch however many streams
// wrote to it, and nothing re-enters a handler from inside its own callbacks.
#pragma once

#include <liburing.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "engine/buffer_pool.h"
#include "engine/op_token.h"
#include "engine/ring.h"
#include "sluice/common/unique_fd.h"

namespace sluice::ztunnel {

struct HandlerId {
  uint32_t slot = kLoopSlot;
  uint32_t generation = 0;
  bool valid() const { return slot != kLoopSlot; }
  bool operator==(const HandlerId&) const = default;
};

class EventLoop;

class IoHandler {
 public:
  virtual ~IoHandler() = default;
  // A completion of an operation this handler submitted with token(op).
  virtual void onCompletion(uint8_t op, int res, uint32_t flags) = 0;
  // Asked for with EventLoop::defer(): once, after the current completion batch.
  virtual void onDeferred() {}
  // Every tick (about a second): deadlines.
  virtual void onTick(std::chrono::steady_clock::time_point) {}
  // A receive of this handler's found no buffer (or its share was spent) and buffers came back.
  virtual void onBuffersAvailable() {}

  HandlerId id() const { return id_; }
  bool retired() const { return retired_; }

 private:
  friend class EventLoop;
  HandlerId id_;
  bool deferred_ = false;
  bool retired_ = false;
};

struct EventLoopOptions {
  unsigned ringEntries = 1024;
  BufferPoolOptions buffers;
  std::chrono::milliseconds tick{1000};
  // Opt-in busy polling: before sleeping for completions, keep asking the kernel for them this
  // long (io_uring_get_events). A completion that comes meanwhile is handled without the
  // sleep and wakeup (on a VM a cross-CPU wakeup is ~25-35 us); the price is the CPU spent
  // spinning, up to this much per idle moment of each worker. 0: off.
  std::chrono::microseconds busyPoll{0};
};

class EventLoop {
 public:
  // Creates the ring on the calling thread, which must be the one that runs the loop
  // (SINGLE_ISSUER binds a ring to its creator).
  static Result<std::unique_ptr<EventLoop>> create(const EventLoopOptions& options);
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Runs batches until `stopping` (checked after each batch).
  void run(const std::atomic<bool>& stopping);
  // One batch: submits, waits up to `timeout` for at least one completion, handles what came.
  void runOnce(std::chrono::milliseconds timeout);

  // Any thread: runs `task` on the loop's thread after the current batch.
  void post(std::function<void()> task);

  // Adds a handler; it is named by its id from here on.
  template <typename T, typename... Args>
  T& add(Args&&... args) {
    auto owned = std::make_unique<T>(std::forward<Args>(args)...);
    T& handler = *owned;
    install(std::move(owned));
    return handler;
  }
  // Takes ownership of a handler built elsewhere.
  IoHandler& install(std::unique_ptr<IoHandler> handler);
  // Null when the handler is gone (retired or never existed).
  IoHandler* find(HandlerId id) const;
  // Takes the handler out of the table; it is destroyed after the current batch. Call it only
  // when none of its operations is in flight.
  void retire(IoHandler& handler);
  void defer(IoHandler& handler);
  // The handler wants onBuffersAvailable() when receive buffers come back.
  void waitForBuffers(IoHandler& handler);
  // Visits every live handler (admin views, drain).
  void forEach(const std::function<void(IoHandler&)>& visit);
  size_t handlerCount() const { return live_; }

  uint64_t token(const IoHandler& handler, uint8_t op) const {
    return OpToken{op, handler.id_.generation, handler.id_.slot}.encode();
  }
  // A submission whose completion nobody needs (cancellations).
  static uint64_t ignoredToken();
  // A free SQE, or null when the kernel takes no more right now: fail the operation then.
  io_uring_sqe* sqe() { return ring_.sqe(); }
  BufferPool& buffers() { return buffers_; }
  const RingFeatures& features() const { return ring_.features(); }
  Ring& ring() { return ring_; }
  // The time at the start of the current batch.
  std::chrono::steady_clock::time_point now() const { return now_; }

 private:
  EventLoop(Ring ring, BufferPool buffers, UniqueFd wake, EventLoopOptions options);
  struct Slot {
    uint32_t generation = 0;
    std::unique_ptr<IoHandler> handler;
  };
  void handle(io_uring_cqe* cqe);
  // Submits, then asks for completions for up to options_.busyPoll; true when some came.
  bool busyPollForCompletions();
  void armWake();
  void armTick();
  void runTasks();
  void afterBatch();
  void releaseFreedMemory();
  static constexpr size_t kTrimAbove = 256;  // bursts smaller than this are not worth a trim

  Ring ring_;
  BufferPool buffers_;
  UniqueFd wakeFd_;
  EventLoopOptions options_;
  uint64_t wakeValue_ = 0;
  __kernel_timespec tickInterval_{};
  std::chrono::steady_clock::time_point now_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point nextTick_ = now_;
  std::vector<Slot> slots_;
  std::vector<uint32_t> freeSlots_;
  size_t live_ = 0;
  size_t peakHandlers_ = 0;  // since the allocator was last trimmed
  std::vector<std::unique_ptr<IoHandler>> graveyard_;  // retired in this batch
  std::vector<HandlerId> deferred_;
  std::vector<HandlerId> starved_;
  std::mutex tasksMutex_;
  std::vector<std::function<void()>> tasks_;
};

}  // namespace sluice::ztunnel
