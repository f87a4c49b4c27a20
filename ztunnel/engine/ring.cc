#include "engine/ring.h"

#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

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
  r.features_.multishotAccept = r.probeMultishotAccept();
  return r;
}

// A kernel without multishot accept fails the request at once (-EINVAL); one with it keeps the
// request armed on a listener nobody connects to, until it is cancelled. Runs before the ring
// carries anything else, so every completion seen here is the probe's.
bool Ring::probeMultishotAccept() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in loopback{};
  loopback.sin_family = AF_INET;
  loopback.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool armed = false;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&loopback), sizeof(loopback)) == 0 && ::listen(fd, 1) == 0) {
    io_uring_sqe* accept = io_uring_get_sqe(&ring_);
    io_uring_prep_multishot_accept(accept, fd, nullptr, nullptr, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(accept, 1);
    io_uring_submit(&ring_);
    io_uring_cqe* cqe = nullptr;
    __kernel_timespec wait{0, 20 * 1000 * 1000};
    armed = io_uring_wait_cqe_timeout(&ring_, &cqe, &wait) == -ETIME;
    if (cqe != nullptr) io_uring_cqe_seen(&ring_, cqe);
    if (armed) {
      io_uring_sqe* cancel = io_uring_get_sqe(&ring_);
      io_uring_prep_cancel64(cancel, 1, IORING_ASYNC_CANCEL_ALL);
      io_uring_sqe_set_data64(cancel, 2);
      io_uring_submit(&ring_);
      // Two completions: the cancel's and the accept's -ECANCELED.
      for (int seen = 0; seen < 2 && io_uring_wait_cqe_timeout(&ring_, &cqe, &wait) == 0; ++seen) {
        io_uring_cqe_seen(&ring_, cqe);
      }
    }
  }
  ::close(fd);
  return armed;
}

Ring::Ring(Ring&& other) noexcept : ring_(other.ring_), live_(std::exchange(other.live_, false)), features_(other.features_) {}

Ring::~Ring() {
  if (live_) io_uring_queue_exit(&ring_);
}

io_uring_sqe* Ring::sqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) {
    // The SQ is full: hand the queued entries to the kernel, which frees every SQ slot.
    if (io_uring_submit(&ring_) >= 0) sqe = io_uring_get_sqe(&ring_);
  }
  return sqe;
}

Result<BufferRing> BufferRing::create(io_uring* ring, uint16_t groupId, uint32_t count, uint32_t size,
                                      uint16_t idBase) {
  if (count == 0 || (count & (count - 1)) != 0 || count > 32768) return fail("buffer count must be a power of two <= 32768");
  if (uint32_t(idBase) + count > 65536) return fail("buffer ids must fit 16 bits");
  BufferRing b;
  b.idBase_ = idBase;
  b.ringFd_ = ring->ring_fd;
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
    auto id = static_cast<uint16_t>(idBase + i);
    io_uring_buf_ring_add(b.br_, b.data(id), size, id, mask, static_cast<int>(i));
  }
  io_uring_buf_ring_advance(b.br_, static_cast<int>(count));
  return b;
}

BufferRing::BufferRing(BufferRing&& o) noexcept
    : ringFd_(o.ringFd_), br_(std::exchange(o.br_, nullptr)), ringBytes_(o.ringBytes_),
      storage_(std::exchange(o.storage_, nullptr)), storageBytes_(o.storageBytes_), group_(o.group_), idBase_(o.idBase_),
      count_(o.count_), size_(o.size_), inUse_(o.inUse_) {}

BufferRing::~BufferRing() {
  if (br_ != nullptr) {
    // By the ring's descriptor, not a pointer to its io_uring struct: a Ring moves (into its
    // EventLoop), its descriptor does not.
    io_uring_buf_reg reg{};
    reg.bgid = group_;
    ::syscall(__NR_io_uring_register, ringFd_, IORING_UNREGISTER_PBUF_RING, &reg, 1);
    ::munmap(br_, ringBytes_);
  }
  if (storage_ != nullptr) ::munmap(storage_, storageBytes_);
}

void BufferRing::releasePages() {
  if (storage_ != nullptr) ::madvise(storage_, storageBytes_, MADV_DONTNEED);
}

void BufferRing::recycle(uint16_t id) {
  io_uring_buf_ring_add(br_, data(id), size_, id, io_uring_buf_ring_mask(count_), 0);
  io_uring_buf_ring_advance(br_, 1);
  --inUse_;
}

}  // namespace sluice::ztunnel
