#include "proxy/http_version_sniffer.h"

#include <sys/socket.h>

#include <spdlog/spdlog.h>

#include <cstring>

#include "l7/http_version.h"
#include "proxy/http2_outbound.h"
#include "proxy/http_outbound.h"

namespace sluice::ztunnel {

HttpVersionSniffer::HttpVersionSniffer(WorkerContext& context, std::shared_ptr<PodRuntime> pod, SocketAddress peer,
                                       SocketAddress service, UniqueFd fd)
    : context_(context), pod_(std::move(pod)), peer_(peer), service_(service), fd_(std::move(fd)),
      accepted_(context.loop.now()) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(kRepeekAfter).count();
  pauseTime_ = {ns / 1000000000, ns % 1000000000};
}

void HttpVersionSniffer::start() { peek(); }

void HttpVersionSniffer::peek() {
  io_uring_sqe* sqe = context_.loop.sqe();
  if (sqe == nullptr) return close();  // no submission entry: refuse rather than wait blind
  io_uring_prep_recv(sqe, fd_.get(), first_.data(), first_.size(), MSG_PEEK);
  io_uring_sqe_set_data64(sqe, context_.loop.token(*this, kPeek));
  inflight_ = true;
}

void HttpVersionSniffer::pause() {
  io_uring_sqe* sqe = context_.loop.sqe();
  if (sqe == nullptr) return close();
  io_uring_prep_timeout(sqe, &pauseTime_, 0, 0);
  io_uring_sqe_set_data64(sqe, context_.loop.token(*this, kPause));
  inflight_ = true;
}

void HttpVersionSniffer::close() {
  closing_ = true;
  if (inflight_) {
    // The peek completes (cancelled) and the handler retires then; a pause ends on its own.
    if (io_uring_sqe* sqe = context_.loop.sqe()) {
      io_uring_prep_cancel_fd(sqe, fd_.get(), IORING_ASYNC_CANCEL_ALL);
      io_uring_sqe_set_data64(sqe, EventLoop::ignoredToken());
    } else {
      ::shutdown(fd_.get(), SHUT_RDWR);
    }
    return;
  }
  fd_.reset();
  context_.loop.retire(*this);
}

void HttpVersionSniffer::onCompletion(uint8_t op, int res, uint32_t /*flags*/) {
  inflight_ = false;
  if (closing_) return close();
  if (op == kPause) return peek();
  if (res <= 0) {
    // The app closed (or reset) before saying anything: nothing to proxy.
    if (res < 0 && res != -ECONNRESET) spdlog::debug("{}: first bytes: {}", pod_->key(), std::strerror(-res));
    return close();
  }
  decide(static_cast<size_t>(res));
}

void HttpVersionSniffer::decide(size_t received) {
  l7::HttpVersionGuess guess = l7::guessHttpVersion({first_.data(), received});
  if (guess == l7::HttpVersionGuess::kUndecided && context_.loop.now() - accepted_ >= kPrefaceDeadline) {
    guess = l7::HttpVersionGuess::kHttp1;  // a preface that never completes: HTTP/1.1's parser refuses it
  }
  switch (guess) {
    case l7::HttpVersionGuess::kUndecided: return pause();
    case l7::HttpVersionGuess::kHttp1:
      context_.loop.add<HttpOutbound>(context_, pod_, peer_, service_).start(std::move(fd_));
      break;
    case l7::HttpVersionGuess::kHttp2:
      context_.loop.add<Http2Outbound>(context_, pod_, peer_, service_).start(std::move(fd_));
      break;
  }
  context_.loop.retire(*this);
}

void HttpVersionSniffer::onTick(std::chrono::steady_clock::time_point now) {
  if (closing_) return;
  bool drained = pod_->drainDeadline && now >= *pod_->drainDeadline;
  if (drained || now - accepted_ >= context_.options.idleTimeout) close();
}

}  // namespace sluice::ztunnel
