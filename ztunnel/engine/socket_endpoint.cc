#include "engine/socket_endpoint.h"

#include <sys/socket.h>

#include <cerrno>

namespace sluice::ztunnel {

SocketEndpoint::SocketEndpoint(EventLoop& loop, IoHandler& handler, EndpointOwner& owner, uint8_t opBase, UniqueFd fd,
                               BufferShare* share)
    : loop_(loop), handler_(handler), owner_(owner), opBase_(opBase), fd_(std::move(fd)), share_(share) {}

// A received chunk nobody took goes back (the owner destroys us only when quiescent).
SocketEndpoint::~SocketEndpoint() { close(); }

void SocketEndpoint::charge(uint32_t bytes) {
  if (share_ != nullptr) share_->heldBytes += bytes;
}

void SocketEndpoint::refund(uint32_t bytes) {
  if (share_ != nullptr) share_->heldBytes -= std::min<uint64_t>(bytes, share_->heldBytes);
}

io_uring_sqe* SocketEndpoint::prep(Op op) {
  io_uring_sqe* sqe = loop_.sqe();
  if (sqe != nullptr) io_uring_sqe_set_data64(sqe, loop_.token(handler_, static_cast<uint8_t>(opBase_ + op)));
  return sqe;
}

bool SocketEndpoint::connect(const SocketAddress& to, std::chrono::milliseconds timeout) {
  connectTo_ = to;
  connectLimit_ = timeout;
  auto ms = timeout.count();
  connectTimeout_.tv_sec = ms / 1000;
  connectTimeout_.tv_nsec = (ms % 1000) * 1000000;
  io_uring_sqe* sqe = prep(kConnect);
  if (sqe == nullptr) return false;
  io_uring_sqe* limit = prep(kConnectTimeout);
  if (limit == nullptr) {
    // The connect entry is already queued: turn it into a no-op nobody waits for.
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data64(sqe, EventLoop::ignoredToken());
    return false;
  }
  io_uring_prep_connect(sqe, fd_.get(), connectTo_.sockaddrPtr(), connectTo_.length());
  sqe->flags |= IOSQE_IO_LINK;
  io_uring_prep_link_timeout(limit, &connectTimeout_, 0);
  inflight_ += 2;
  return true;
}

// Only the connect has completed (nothing else is armed before the connection is up), so the
// descriptor can change under no operation; the linked timeout of the failed connect was
// cancelled with it and completes on its own.
bool SocketEndpoint::rebindAndConnect() {
  ++rebinds_;
  auto rebound = rebind_();
  if (!rebound) return false;
  whileOpen_.reset();  // the old port's registration ends before its socket closes
  fd_ = std::move(rebound->fd);
  whileOpen_ = std::move(rebound->whileOpen);
  return connect(connectTo_, connectLimit_);
}

IoResult SocketEndpoint::read() {
  BufferPool& pool = loop_.buffers();
  if (recvReady_) {
    recvReady_ = false;
    int res = recvResult_;
    if (res > 0 && recvBuffer_) {
      uint16_t id = *recvBuffer_;
      recvBuffer_.reset();
      uint32_t size = pool.bufferSizeOf(id);
      // Grow with the transfer, shrink when it turns interactive again.
      uint32_t small = pool.bufferSize(BufferPool::Size::kSmall);
      if (!large_ && static_cast<uint32_t>(res) == size) large_ = true;
      else if (large_ && static_cast<uint32_t>(res) < small) large_ = false;
      return IoResult::data({pool.data(id), static_cast<uint32_t>(res), id});
    }
    if (recvBuffer_) {
      refund(pool.bufferSizeOf(*recvBuffer_));
      pool.recycle(*recvBuffer_);
      recvBuffer_.reset();
    }
    if (res == 0) {
      eofSeen_ = true;
      return IoResult::eof();
    }
    if (res != -ENOBUFS) return IoResult::error();
    // The ring of this size ran dry: try the other size, else wait for buffers to come back.
    if (large_) {
      large_ = false;
    } else {
      waitingForBuffers_ = true;
      loop_.waitForBuffers(handler_);
      return IoResult::pending();
    }
  }
  if (eofSeen_) return IoResult::eof();
  if (recvArmed_ || waitingForBuffers_ || aborted_) return IoResult::pending();
  auto size = large_ ? BufferPool::Size::kLarge : BufferPool::Size::kSmall;
  uint32_t bytes = pool.bufferSize(size);
  if (share_ != nullptr && share_->spent()) {
    waitingForBuffers_ = true;
    loop_.waitForBuffers(handler_);
    return IoResult::pending();
  }
  io_uring_sqe* sqe = prep(kRecv);
  if (sqe == nullptr) return IoResult::error();
  io_uring_prep_recv(sqe, fd_.get(), nullptr, bytes, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = pool.group(size);
  recvArmed_ = true;
  ++inflight_;
  return IoResult::pending();
}

void SocketEndpoint::close() {
  if (recvBuffer_) {
    refund(loop_.buffers().bufferSizeOf(*recvBuffer_));
    loop_.buffers().recycle(*recvBuffer_);
    recvBuffer_.reset();
  }
  whileOpen_.reset();
  fd_.reset();
}

void SocketEndpoint::onBuffersAvailable() { waitingForBuffers_ = false; }

void SocketEndpoint::release(const Chunk& chunk) {
  auto id = static_cast<uint16_t>(chunk.handle);
  refund(loop_.buffers().bufferSizeOf(id));
  loop_.buffers().recycle(id);
}

IoResult SocketEndpoint::write(std::span<const uint8_t> bytes) {
  if (sendReady_) {
    sendReady_ = false;
    return sendResult_ > 0 ? IoResult::done(static_cast<size_t>(sendResult_)) : IoResult::error();
  }
  if (sendArmed_ || aborted_) return IoResult::pending();
  io_uring_sqe* sqe = prep(kSend);
  if (sqe == nullptr) return IoResult::error();
  io_uring_prep_send(sqe, fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
  sendArmed_ = true;
  ++inflight_;
  return IoResult::pending();
}

// The relay half-closes only once every queued byte was sent (no send is in flight), so the
// FIN follows the last byte.
IoResult SocketEndpoint::shutdownWrite() {
  if (aborted_) return IoResult::pending();
  // ENOTCONN: the peer is already gone both ways; there is nothing left to half-close.
  if (::shutdown(fd_.get(), SHUT_WR) == 0 || errno == ENOTCONN) return IoResult::done();
  return IoResult::error();
}

void SocketEndpoint::abort(bool reset) {
  if (aborted_) return;
  aborted_ = true;
  if (recvBuffer_) {
    refund(loop_.buffers().bufferSizeOf(*recvBuffer_));
    loop_.buffers().recycle(*recvBuffer_);
    recvBuffer_.reset();
  }
  if (reset) {
    // No FIN first: the peer must see a reset, not an orderly end followed by one. The RST
    // goes out when the descriptor is closed.
    linger l{1, 0};
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  }
  if (inflight_ == 0) return;
  // Completes every operation still in flight on the socket, so the owner can let it go.
  if (io_uring_sqe* sqe = loop_.sqe()) {
    io_uring_prep_cancel_fd(sqe, fd_.get(), IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, EventLoop::ignoredToken());
  } else {
    ::shutdown(fd_.get(), SHUT_RDWR);  // no entry for a cancel: the operations end on their own
  }
}

void SocketEndpoint::onCompletion(uint8_t op, int res, uint32_t flags) {
  --inflight_;
  switch (static_cast<Op>(op - opBase_)) {
    case kRecv: {
      recvArmed_ = false;
      std::optional<uint16_t> buffer;
      if (flags & IORING_CQE_F_BUFFER) {
        buffer = static_cast<uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT);
        loop_.buffers().taken(*buffer);
      }
      if (aborted_) {
        if (buffer) loop_.buffers().recycle(*buffer);
        break;
      }
      // The buffer is the pod's until the relay releases the chunk.
      if (buffer) charge(loop_.buffers().bufferSizeOf(*buffer));
      recvBuffer_ = buffer;
      recvResult_ = res;
      recvReady_ = true;
      break;
    }
    case kSend:
      sendArmed_ = false;
      sendResult_ = res;
      sendReady_ = !aborted_;
      break;
    case kConnect:
      if (res == -EADDRNOTAVAIL && !aborted_ && rebind_ && rebinds_ < kRebinds && rebindAndConnect()) break;
      if (!aborted_) owner_.onEndpointConnected(*this, res >= 0, res >= 0 ? FailReason::kConnectError : connectFailure(-res));
      break;
    case kConnectTimeout:
    case kOpCount:
      break;
  }
  owner_.onEndpointProgress();
}

}  // namespace sluice::ztunnel
