// One io_uring per worker thread, and the provided-buffer ring its receives draw from.
//
// Ring flags, each for a reason:
//   SINGLE_ISSUER   only the worker thread submits (other threads post tasks, see Worker)
//   DEFER_TASKRUN   completion work runs when the worker asks for completions, not on random
//                   interrupts: fewer context switches, better batching
//   CQSIZE = 4 x SQ multishot accepts and many connections complete more than they submit
// Both flags need kernel >= 6.1; without them the ring still works (probed at start).
#pragma once

#include <liburing.h>

#include <cstdint>
#include <string>
#include <vector>

#include "sluice/common/error.h"

namespace sluice::ztunnel {

// What the kernel was found to support (probed, never assumed).
struct RingFeatures {
  bool singleIssuer = false;
  bool deferTaskrun = false;
  bool multishotAccept = false;  // an armed multishot accept stayed armed on a loopback listener
  bool bufferRing = false;       // a provided-buffer ring registered (set by the buffer pool)
  std::string describe() const;
};

class Ring {
 public:
  static Result<Ring> create(unsigned entries);
  Ring(Ring&& other) noexcept;
  Ring& operator=(Ring&&) = delete;
  ~Ring();

  io_uring* get() { return &ring_; }
  const RingFeatures& features() const { return features_; }
  void confirmBufferRing() { features_.bufferRing = true; }
  // A free SQE, submitting queued ones first when the SQ is full; null only when the kernel
  // takes no more submissions right now (callers fail the operation as a value).
  io_uring_sqe* sqe();

 private:
  Ring() = default;
  bool probeMultishotAccept();
  io_uring ring_{};
  bool live_ = false;
  RingFeatures features_;
};

// Buffers the kernel picks from for receives (IOSQE_BUFFER_SELECT): an idle connection holds
// none, so memory follows traffic, not connection count.
// Ownership rule: a buffer belongs to the kernel while in the ring; a recv completion hands
// buffer `id` to the worker, which returns it with recycle(id) once its bytes were sent.
class BufferRing {
 public:
  // Buffer ids are idBase .. idBase+count-1, so several rings' ids never collide.
  static Result<BufferRing> create(io_uring* ring, uint16_t groupId, uint32_t count, uint32_t size,
                                   uint16_t idBase = 0);
  BufferRing(BufferRing&& other) noexcept;
  BufferRing& operator=(BufferRing&&) = delete;
  ~BufferRing();

  uint16_t group() const { return group_; }
  uint32_t bufferSize() const { return size_; }
  uint8_t* data(uint16_t id) { return storage_ + size_t(id - idBase_) * size_; }
  bool owns(uint16_t id) const { return id >= idBase_ && id < idBase_ + count_; }
  void recycle(uint16_t id);
  uint32_t count() const { return count_; }
  uint32_t inUse() const { return inUse_; }
  void taken() { ++inUse_; }
  // Gives the pages of every buffer back to the kernel (the next receive into one faults in a
  // fresh page). Only with none held (inUse() == 0) and no completion unseen: see
  // BufferPool::releaseIfIdle.
  void releasePages();


 private:
  BufferRing() = default;
  int ringFd_ = -1;  // the io_uring the buffers are registered with
  io_uring_buf_ring* br_ = nullptr;
  size_t ringBytes_ = 0;
  uint8_t* storage_ = nullptr;
  size_t storageBytes_ = 0;
  uint16_t group_ = 0, idBase_ = 0;
  uint32_t count_ = 0, size_ = 0, inUse_ = 0;
};

}  // namespace sluice::ztunnel
