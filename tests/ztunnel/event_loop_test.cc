// The event loop's waiting: plain (sleep until a completion) and with busy polling (ask the
// kernel for completions a while before sleeping). No root needed.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "engine/event_loop.h"

namespace sluice::ztunnel {
namespace {

using namespace std::chrono_literals;

std::unique_ptr<EventLoop> loopWith(std::chrono::microseconds busyPoll) {
  auto loop = EventLoop::create({.ringEntries = 64, .buffers = {64, 4096, 16, 65536}, .busyPoll = busyPoll});
  EXPECT_TRUE(loop) << (loop ? "" : loop.error().message());
  return loop ? std::move(*loop) : nullptr;
}

// A task posted from another thread wakes the loop (an eventfd read on the ring), whether it
// comes while the loop still polls (right away) or once it sleeps (after the poll ran out).
class EventLoopWaiting : public ::testing::TestWithParam<std::chrono::microseconds> {};

TEST_P(EventLoopWaiting, TasksPostedFromAnotherThreadRunWhenTheyComeEarlyOrLate) {
  auto loop = loopWith(GetParam());
  ASSERT_TRUE(loop);
  for (auto delay : {0ms, 30ms}) {
    std::atomic<bool> ran{false};
    std::thread poster([&] {
      std::this_thread::sleep_for(delay);
      loop->post([&] { ran = true; });
    });
    for (int i = 0; i < 100 && !ran; ++i) loop->runOnce(std::chrono::milliseconds(-1));
    poster.join();
    EXPECT_TRUE(ran) << "posted after " << delay.count() << " ms";
  }
}

INSTANTIATE_TEST_SUITE_P(BusyPoll, EventLoopWaiting, ::testing::Values(0us, 200us, 1000us));

}  // namespace
}  // namespace sluice::ztunnel
