#include "engine/listener.h"

#include <sys/socket.h>

#include <spdlog/spdlog.h>

#include <cstring>

namespace sluice::ztunnel {
namespace {

// Resource exhaustion: accepting again at once would fail again at once.
bool exhausted(int err) { return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM; }

}  // namespace

Listener::Listener(EventLoop& loop, UniqueFd fd, std::unique_ptr<Acceptor> acceptor, const void* owner)
    : loop_(loop), fd_(std::move(fd)), acceptor_(std::move(acceptor)), owner_(owner) {}

void Listener::start() { arm(); }

void Listener::arm() {
  if (closing_ || armed_ || waiting_) return;
  io_uring_sqe* sqe = loop_.sqe();
  if (sqe == nullptr) return backOff();  // no entry now: try again shortly
  io_uring_prep_multishot_accept(sqe, fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, loop_.token(*this, kAccept));
  armed_ = true;
}

void Listener::backOff() {
  if (waiting_ || closing_) return;
  io_uring_sqe* sqe = loop_.sqe();
  if (sqe == nullptr) return;  // the next accept completion or tick brings us back
  auto ms = backoff_.count();
  backoffTime_ = {ms / 1000, (ms % 1000) * 1000000};
  io_uring_prep_timeout(sqe, &backoffTime_, 0, 0);
  io_uring_sqe_set_data64(sqe, loop_.token(*this, kBackoff));
  waiting_ = true;
  ++backoffs_;
  backoff_ = std::min(backoff_ * 2, kMaxBackoff);
}

void Listener::close() {
  if (closing_) return;
  closing_ = true;
  if (armed_) {
    if (io_uring_sqe* sqe = loop_.sqe()) {
      io_uring_prep_cancel64(sqe, loop_.token(*this, kAccept), 0);
      io_uring_sqe_set_data64(sqe, EventLoop::ignoredToken());
    } else {
      ::shutdown(fd_.get(), SHUT_RDWR);  // ends the accept all the same
    }
  }
  maybeRetire();
}

void Listener::maybeRetire() {
  if (closing_ && !armed_ && !waiting_) {
    fd_.reset();
    loop_.retire(*this);
  }
}

void Listener::onCompletion(uint8_t op, int res, uint32_t flags) {
  if (op == kBackoff) {
    waiting_ = false;
    arm();
    return maybeRetire();
  }
  bool more = flags & IORING_CQE_F_MORE;
  if (!more) armed_ = false;
  if (res >= 0) {
    UniqueFd accepted(res);
    backoff_ = kFirstBackoff;
    if (!closing_) acceptor_->onAccepted(std::move(accepted));
  } else if (exhausted(-res)) {
    spdlog::warn("accept: {}; backing off {} ms", std::strerror(-res), backoff_.count());
    if (more) {
      // Still armed: stop it, and back off once its final completion arrives.
      if (io_uring_sqe* sqe = loop_.sqe()) {
        io_uring_prep_cancel64(sqe, loop_.token(*this, kAccept), 0);
        io_uring_sqe_set_data64(sqe, EventLoop::ignoredToken());
      }
      backoffPending_ = true;
      return;
    }
    backOff();
  } else if (res != -ECANCELED) {
    spdlog::warn("accept: {}", std::strerror(-res));
  }
  if (!armed_) {
    if (backoffPending_) {
      backoffPending_ = false;
      backOff();
    } else if (!waiting_) {
      arm();  // the kernel ended the multishot (e.g. an error): re-arm
    }
  }
  maybeRetire();
}

}  // namespace sluice::ztunnel
