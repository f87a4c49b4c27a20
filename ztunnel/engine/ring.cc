#include "engine/ring.h"

#include <sys/mman.h>

#include <fmt/format.h>

#include <utility>

namespace sluice::ztunnel {

std::string RingFeatures::describe() const {
  return fmt::format("io_uring: single-issuer {}, defer-taskrun {}, multishot accept {}, buffer ring {}",
                     singleIssuer ? "yes" : "no", deferTaskrun ? "yes" : "no", multishotAccept ? "yes" : "no",
                     bufferRing ? "yes" : "no");
}

Result<Ring> Ring::create(unsigned entries) {
  Ring r;
  io_uring_params params{};
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
  params.cq_entries = entries * 4;
  int err = io_uring_queue_init_params(entries, &r.ring_, &params);
  if (err == -EINVAL) {
    // Older kernel: fall back to a plain ring.
    params = {};
    params.flags = IORING_SETUP_CQSIZE;
    params.cq_entries = entries * 4;
    err = io_uring_queue_init_params(entries, &r.ring_, &params);
  } else if (err == 0) {
    r.features_.singleIssuer = true;
    r.features_.deferTaskrun = true;
  }
  if (err != 0) return failErrno("io_uring_queue_init", -err);
  r.live_ = true;
  io_uring_probe* probe = io_uring_get_probe_ring(&r.ring_);
  if (probe != nullptr) {
    r.features_.multishotAccept = io_uring_opcode_supported(probe, IORING_OP_ACCEPT);
    io_uring_free_probe(probe);
  }
  r.features_.bufferRing = true;  // confirmed when the first BufferRing registers
  return r;
}

Ring::Ring(Ring&& other) noexcept : ring_(other.ring_), live_(std::exchange(other.live_, false)), features_(other.features_) {}

Ring::~Ring() {
  if (live_) io_uring_queue_exit(&ring_);
}

io_uring_sqe* Ring::sqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) {
    io_uring_submit(&ring_);
    sqe = io_uring_get_sqe(&ring_);
  }
  return sqe;
}

Result<BufferRing> BufferRing::create(io_uring* ring, uint16_t groupId, uint32_t count, uint32_t size) {
  if (count == 0 || (count & (count - 1)) != 0 || count > 32768) return fail("buffer count must be a power of two <= 32768");
  BufferRing b;
  b.ring_ = ring;
  b.group_ = groupId;
  b.count_ = count;
  b.size_ = size;
  // liburing 2.3 has no io_uring_setup_buf_ring: map the ring, register it, fill it.
  b.ringBytes_ = count * sizeof(io_uring_buf);
  void* mem = ::mmap(nullptr, b.ringBytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED) return failErrno("mmap buffer ring");
  b.br_ = static_cast<io_uring_buf_ring*>(mem);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(b.br_);
  reg.ring_entries = count;
  reg.bgid = groupId;
  if (int err = io_uring_register_buf_ring(ring, &reg, 0); err != 0) return failErrno("register buffer ring", -err);
  b.storageBytes_ = size_t(count) * size;
  // Reserved, not committed: pages become resident only when traffic touches them.
  void* storage = ::mmap(nullptr, b.storageBytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE | MAP_NORESERVE, -1, 0);
  if (storage == MAP_FAILED) return failErrno("mmap buffers");
  b.storage_ = static_cast<uint8_t*>(storage);
  io_uring_buf_ring_init(b.br_);
  int mask = io_uring_buf_ring_mask(count);
  for (uint32_t i = 0; i < count; ++i) {
    io_uring_buf_ring_add(b.br_, b.data(static_cast<uint16_t>(i)), size, static_cast<uint16_t>(i), mask, static_cast<int>(i));
  }
  io_uring_buf_ring_advance(b.br_, static_cast<int>(count));
  return b;
}

BufferRing::BufferRing(BufferRing&& o) noexcept
    : ring_(o.ring_), br_(std::exchange(o.br_, nullptr)), ringBytes_(o.ringBytes_),
      storage_(std::exchange(o.storage_, nullptr)), storageBytes_(o.storageBytes_), group_(o.group_),
      count_(o.count_), size_(o.size_), inUse_(o.inUse_) {}

BufferRing::~BufferRing() {
  if (br_ != nullptr) {
    io_uring_unregister_buf_ring(ring_, group_);
    ::munmap(br_, ringBytes_);
  }
  if (storage_ != nullptr) ::munmap(storage_, storageBytes_);
}

void BufferRing::recycle(uint16_t id) {
  io_uring_buf_ring_add(br_, data(id), size_, id, io_uring_buf_ring_mask(count_), 0);
  io_uring_buf_ring_advance(br_, 1);
  --inUse_;
}

}  // namespace sluice::ztunnel
