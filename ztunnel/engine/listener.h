// A listening socket of a pod, accepting with one multishot accept. Each accepted descriptor
// goes to the listener's Acceptor (outbound, inbound passthrough, HBONE server: proxy/), which
// owns it from then on.
//
// Running out of descriptors (EMFILE/ENFILE) or memory does not spin: the listener stops
// accepting and tries again after a back-off (50 ms doubling to 1 s), while the connections
// wait in the kernel's backlog. close() cancels the accept; the listener retires when the
// cancellation completes.
#pragma once

#include <memory>

#include "engine/event_loop.h"
#include "sluice/common/unique_fd.h"

namespace sluice::ztunnel {

class Acceptor {
 public:
  virtual ~Acceptor() = default;
  virtual void onAccepted(UniqueFd fd) = 0;
};

class Listener final : public IoHandler {
 public:
  static constexpr std::chrono::milliseconds kFirstBackoff{50};
  static constexpr std::chrono::milliseconds kMaxBackoff{1000};

  Listener(EventLoop& loop, UniqueFd fd, std::unique_ptr<Acceptor> acceptor, const void* owner);
  void start();
  void close();
  // Whose listener this is (a pod), for draining.
  const void* owner() const { return owner_; }
  int fd() const { return fd_.get(); }
  uint64_t backoffs() const { return backoffs_; }

  void onCompletion(uint8_t op, int res, uint32_t flags) override;

 private:
  enum Op : uint8_t { kAccept = 1, kBackoff, kCancel };
  void arm();
  void backOff();
  void maybeRetire();

  EventLoop& loop_;
  UniqueFd fd_;
  std::unique_ptr<Acceptor> acceptor_;
  const void* owner_;
  bool armed_ = false, waiting_ = false, closing_ = false, backoffPending_ = false;
  std::chrono::milliseconds backoff_{kFirstBackoff};
  __kernel_timespec backoffTime_{};
  uint64_t backoffs_ = 0;
};

}  // namespace sluice::ztunnel
