#include "engine/event_loop.h"

#include <malloc.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cstring>

#include "sluice/common/assert.h"

namespace sluice::ztunnel {
namespace {

// The loop's own operations (on kLoopSlot).
enum LoopOp : uint8_t { kWake = 1, kTick = 2, kIgnored = 3 };

}  // namespace

Result<std::unique_ptr<EventLoop>> EventLoop::create(const EventLoopOptions& options) {
  SLUICE_TRY_ASSIGN(ring, Ring::create(options.ringEntries));
  SLUICE_TRY_ASSIGN(buffers, BufferPool::create(ring.get(), options.buffers, ring.features().deferTaskrun));
  UniqueFd wake(::eventfd(0, EFD_CLOEXEC));
  if (!wake) return failErrno("event loop eventfd");
  std::unique_ptr<EventLoop> loop(new EventLoop(std::move(ring), std::move(buffers), std::move(wake), options));
  loop->armWake();
  loop->armTick();
  return loop;
}

EventLoop::EventLoop(Ring ring, BufferPool buffers, UniqueFd wake, EventLoopOptions options)
    : ring_(std::move(ring)), buffers_(std::move(buffers)), wakeFd_(std::move(wake)), options_(options) {
  // A registered buffer ring is what the pool's creation proved.
  ring_.confirmBufferRing();
  auto ms = options_.tick.count();
  tickInterval_.tv_sec = ms / 1000;
  tickInterval_.tv_nsec = (ms % 1000) * 1000000;
}

EventLoop::~EventLoop() {
  // Handlers close their sockets as they are destroyed; the ring goes last (members in order).
  graveyard_.clear();
  slots_.clear();
}

uint64_t EventLoop::ignoredToken() { return OpToken{kIgnored, 0, kLoopSlot}.encode(); }

void EventLoop::post(std::function<void()> task) {
  {
    std::lock_guard lock(tasksMutex_);
    tasks_.push_back(std::move(task));
  }
  uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wakeFd_.get(), &one, sizeof(one));
}

void EventLoop::run(const std::atomic<bool>& stopping) {
  while (!stopping) runOnce(std::chrono::milliseconds(-1));
}

bool EventLoop::busyPollForCompletions() {
  io_uring* ring = ring_.get();
  if (io_uring_cq_ready(ring) > 0) return true;
  if (io_uring_submit(ring) < 0) return false;
  // With DEFER_TASKRUN completions are posted only when the ring's thread enters the kernel
  // for them, so the spin asks for them (a system call per round) rather than reading the CQ.
  auto until = std::chrono::steady_clock::now() + options_.busyPoll;
  while (io_uring_cq_ready(ring) == 0) {
    if (io_uring_get_events(ring) < 0 || std::chrono::steady_clock::now() >= until) break;
  }
  return io_uring_cq_ready(ring) > 0;
}

void EventLoop::runOnce(std::chrono::milliseconds timeout) {
  io_uring* ring = ring_.get();
  int rc;
  if (timeout.count() < 0 && options_.busyPoll.count() > 0 && busyPollForCompletions()) {
    rc = 0;  // completions are there: handle them without sleeping
  } else if (timeout.count() < 0) {
    rc = io_uring_submit_and_wait(ring, 1);
  } else {
    __kernel_timespec ts{timeout.count() / 1000, (timeout.count() % 1000) * 1000000};
    io_uring_cqe* first = nullptr;
    rc = io_uring_submit_and_wait_timeout(ring, &first, 1, &ts, nullptr);
  }
  if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY && rc != -ETIME) {
    spdlog::error("io_uring_submit_and_wait: {}", std::strerror(-rc));
  }
  now_ = std::chrono::steady_clock::now();
  // Completions are copied out and the CQ advanced before they are handled, so the CQ has
  // room for what the handlers submit meanwhile (a full CQ makes the kernel refuse
  // submissions). Only what is already in the CQ is taken: no extra system call per batch
  // (io_uring_peek_cqe would enter the kernel when the CQ is empty).
  for (;;) {
    io_uring_cqe batch[64];
    unsigned n = 0, head;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(ring, head, cqe) {
      batch[n++] = *cqe;
      if (n == std::size(batch)) break;
    }
    if (n == 0) break;
    io_uring_cq_advance(ring, n);
    for (unsigned i = 0; i < n; ++i) handle(&batch[i]);
  }
  afterBatch();
}

void EventLoop::afterBatch() {
  // Deferred work may defer more (a flush that frees a window wakes a relay that writes): go
  // round until nothing is asked for.
  while (!deferred_.empty()) {
    std::vector<HandlerId> now;
    now.swap(deferred_);
    for (HandlerId id : now) {
      IoHandler* h = find(id);
      if (h == nullptr) continue;
      h->deferred_ = false;
      h->onDeferred();
    }
  }
  if (!starved_.empty() && buffers_.takeRecycledFlag()) {
    std::vector<HandlerId> waiting;
    waiting.swap(starved_);
    for (HandlerId id : waiting) {
      if (IoHandler* h = find(id)) h->onBuffersAvailable();
    }
    // Wakes may have deferred work again.
    if (!deferred_.empty()) return afterBatch();
  }
  graveyard_.clear();
  releaseFreedMemory();
  // Every completion of this round has been handled (none left in the CQ): no buffer the
  // kernel filled is unseen, the condition for giving idle buffers' pages back.
  if (buffers_.resident() && io_uring_cq_ready(ring_.get()) == 0) buffers_.releaseIfIdle();
}

// Memory follows load: once the handler count fell to half of its peak (a burst of connections
// ended), the allocator gives its free pages back to the kernel. At most log2(peak) trims per
// burst, each a walk of the heap's free lists, off any connection's critical path.
void EventLoop::releaseFreedMemory() {
  if (peakHandlers_ >= kTrimAbove && live_ <= peakHandlers_ / 2) {
    ::malloc_trim(0);
    peakHandlers_ = live_;
  }
}

void EventLoop::handle(io_uring_cqe* cqe) {
  OpToken t = OpToken::decode(cqe->user_data);
  if (t.slot == kLoopSlot) {
    if (t.op == kWake) {
      runTasks();
      armWake();
    } else if (t.op == kTick) {
      forEach([this](IoHandler& h) { h.onTick(now_); });
      buffers_.tick();
      armTick();
    }
    return;
  }
  IoHandler* handler = t.slot < slots_.size() && (slots_[t.slot].generation & 0xffffffu) == t.generation
                           ? slots_[t.slot].handler.get()
                           : nullptr;
  if (handler == nullptr) {
    // Stale: the handler is gone. A buffer the completion carries is ours to give back.
    if (cqe->flags & IORING_CQE_F_BUFFER) {
      auto id = static_cast<uint16_t>(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
      buffers_.taken(id);
      buffers_.recycle(id);
    }
    return;
  }
  handler->onCompletion(t.op, cqe->res, cqe->flags);
}

void EventLoop::runTasks() {
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard lock(tasksMutex_);
    tasks.swap(tasks_);
  }
  for (auto& task : tasks) task();
}

void EventLoop::armWake() {
  // The loop's own submissions must not fail: without them no task and no tick would run.
  io_uring_sqe* sqe = ring_.sqe();
  SLUICE_CHECK(sqe != nullptr, "event loop: no submission entry for the wake read");
  io_uring_prep_read(sqe, wakeFd_.get(), &wakeValue_, sizeof(wakeValue_), 0);
  io_uring_sqe_set_data64(sqe, OpToken{kWake, 0, kLoopSlot}.encode());
}

void EventLoop::armTick() {
  io_uring_sqe* sqe = ring_.sqe();
  SLUICE_CHECK(sqe != nullptr, "event loop: no submission entry for the tick");
  io_uring_prep_timeout(sqe, &tickInterval_, 0, 0);
  io_uring_sqe_set_data64(sqe, OpToken{kTick, 0, kLoopSlot}.encode());
}

IoHandler& EventLoop::install(std::unique_ptr<IoHandler> handler) {
  uint32_t slot;
  if (!freeSlots_.empty()) {
    slot = freeSlots_.back();
    freeSlots_.pop_back();
  } else {
    slot = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  handler->id_ = {slot, slots_[slot].generation & 0xffffffu};
  IoHandler& ref = *handler;
  slots_[slot].handler = std::move(handler);
  ++live_;
  peakHandlers_ = std::max(peakHandlers_, live_);
  return ref;
}

IoHandler* EventLoop::find(HandlerId id) const {
  if (!id.valid() || id.slot >= slots_.size()) return nullptr;
  const Slot& s = slots_[id.slot];
  return (s.generation & 0xffffffu) == id.generation ? s.handler.get() : nullptr;
}

void EventLoop::retire(IoHandler& handler) {
  if (handler.retired_) return;
  HandlerId id = handler.id_;
  SLUICE_ASSERT(find(id) == &handler, "retiring a handler that is not in the table");
  handler.retired_ = true;
  Slot& s = slots_[id.slot];
  graveyard_.push_back(std::move(s.handler));
  ++s.generation;  // completions still naming the old generation are stale from now on
  freeSlots_.push_back(id.slot);
  --live_;
}

void EventLoop::defer(IoHandler& handler) {
  if (handler.deferred_ || handler.retired_) return;
  handler.deferred_ = true;
  deferred_.push_back(handler.id_);
}

void EventLoop::waitForBuffers(IoHandler& handler) { starved_.push_back(handler.id_); }

void EventLoop::forEach(const std::function<void(IoHandler&)>& visit) {
  // By index: a visit may add handlers (the table may grow) or retire them.
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (IoHandler* h = slots_[i].handler.get()) visit(*h);
  }
}

}  // namespace sluice::ztunnel
