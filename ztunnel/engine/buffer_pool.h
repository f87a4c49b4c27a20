// The receive buffers of one worker: two provided-buffer rings the kernel picks from, a small
// one and a large one. A connection reads into small buffers until a read fills one (a bulk
// transfer), then into large ones until reads turn small again (ztunnel's copy.rs grows its
// buffer the same way): an interactive or idle connection never pins a large buffer, a bulk one
// moves 64 KiB per system call.
//
// Ownership rule: a buffer belongs to the kernel while in its ring; a receive completion hands
// buffer `id` to the worker, which gives it back with recycle(id) once its bytes were sent.
// Ids of the two rings never collide, so an id alone says where it goes back.
//
// Shares: every buffer taken is charged to a BufferShare (one per pod), and a share at its
// limit gets no buffer until one of its own comes back, so the slow readers of one pod cannot
// take every buffer of the worker.
#pragma once

#include <cstdint>
#include <optional>

#include "engine/ring.h"

namespace sluice::ztunnel {

struct BufferPoolOptions {
  uint32_t smallCount = 1024;
  uint32_t smallSize = 4 * 1024;
  // The kernel takes buffers from a ring in FIFO order, so under traffic every buffer of a
  // ring ends up resident: the counts are what a busy worker holds (4 + 16 MiB); an idle one
  // gives the pages back (releaseIfIdle).
  uint32_t largeCount = 256;
  uint32_t largeSize = 64 * 1024;
  // Ticks (about a second each) with no buffer taken before an idle worker's pages go back.
  uint32_t releaseAfterQuietTicks = 5;
};

// What one pod's connections may hold of a worker's buffers (worker-thread only).
struct BufferShare {
  uint64_t limitBytes = 0;  // 0: no limit
  uint64_t heldBytes = 0;
  // No further receive may be armed until some of the pod's buffers come back.
  bool spent() const { return limitBytes != 0 && heldBytes >= limitBytes; }
};

class BufferPool {
 public:
  enum class Size { kSmall, kLarge };
  // `mayReleasePages`: the kernel fills buffers only inside this thread's io_uring_enter (a
  // DEFER_TASKRUN ring), the condition for releaseIfIdle to be safe.
  static Result<BufferPool> create(io_uring* ring, const BufferPoolOptions& options, bool mayReleasePages);

  uint16_t group(Size size) const { return size == Size::kSmall ? small_->group() : large_->group(); }
  uint32_t bufferSize(Size size) const { return size == Size::kSmall ? small_->bufferSize() : large_->bufferSize(); }
  uint32_t bufferSizeOf(uint16_t id) const { return small_->owns(id) ? small_->bufferSize() : large_->bufferSize(); }
  uint8_t* data(uint16_t id) { return small_->owns(id) ? small_->data(id) : large_->data(id); }
  // A completion handed buffer `id` to the worker.
  void taken(uint16_t id);
  void recycle(uint16_t id);
  // Buffers came back since the last call (starved readers may try again).
  bool takeRecycledFlag() { return std::exchange(recycled_, false); }
  uint32_t inUse() const { return small_->inUse() + large_->inUse(); }

  // The loop's tick: counts ticks with no buffer taken.
  void tick() { ++quietTicks_; }
  // Memory follows load: when no buffer is held and none was taken for a few ticks, every
  // buffer's pages go back to the kernel; true when they did. The caller guarantees that the
  // kernel holds no filled buffer whose completion is unseen: the loop calls it after a
  // batch, with the completion queue drained, and on a DEFER_TASKRUN ring the kernel picks
  // and fills a provided buffer only inside the loop's next io_uring_enter.
  bool releaseIfIdle();
  // Pages of buffers may be resident (a buffer was taken since the last release).
  bool resident() const { return resident_; }

 private:
  BufferPool() = default;
  std::optional<BufferRing> small_, large_;
  bool recycled_ = false;
  bool mayReleasePages_ = false;
  bool resident_ = false;
  uint32_t quietTicks_ = 0, releaseAfterQuietTicks_ = 0;
};

}  // namespace sluice::ztunnel
