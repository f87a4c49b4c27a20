// When a worker's receive buffers give their pages back: only on a ring where that is safe,
// only with no buffer held, only after enough quiet ticks, and once per busy period.
#include "engine/buffer_pool.h"

#include <gtest/gtest.h>

#include <cstring>

namespace sluice::ztunnel {
namespace {

struct PoolUnderTest {
  Ring ring;
  BufferPool pool;
};

std::optional<PoolUnderTest> makePool(bool mayReleasePages) {
  auto ring = Ring::create(64);
  if (!ring) return std::nullopt;
  BufferPoolOptions options{.smallCount = 8, .smallSize = 4096, .largeCount = 4, .largeSize = 65536,
                            .releaseAfterQuietTicks = 3};
  auto pool = BufferPool::create(ring->get(), options, mayReleasePages);
  if (!pool) return std::nullopt;
  return PoolUnderTest{std::move(*ring), std::move(*pool)};
}

TEST(BufferPoolRelease, GivesPagesBackOnlyWhenIdleLongEnoughAndNothingIsHeld) {
  auto p = makePool(true);
  ASSERT_TRUE(p);
  BufferPool& pool = p->pool;
  const uint16_t large = 8;  // large ids follow the 8 small ones
  EXPECT_FALSE(pool.releaseIfIdle()) << "nothing was ever resident";

  pool.taken(large);  // a receive completed into a large buffer
  std::memset(pool.data(large), 0xab, pool.bufferSizeOf(large));
  for (int i = 0; i < 5; ++i) pool.tick();
  EXPECT_FALSE(pool.releaseIfIdle()) << "a buffer is held";
  pool.recycle(large);
  // Recycling is not taking: the quiet ticks while it was held count, so it may go at once.
  EXPECT_TRUE(pool.releaseIfIdle());
  EXPECT_FALSE(pool.resident());
  EXPECT_EQ(pool.data(large)[0], 0) << "the page was given back (a fresh zero page on the next touch)";
  EXPECT_FALSE(pool.releaseIfIdle()) << "once per busy period";

  pool.taken(0);
  pool.recycle(0);
  pool.tick();
  pool.tick();
  EXPECT_FALSE(pool.releaseIfIdle()) << "taken two ticks ago";
  pool.tick();
  EXPECT_TRUE(pool.releaseIfIdle());
}

TEST(BufferPoolRelease, NeverOnARingWhereTheKernelMayFillBuffersAtAnyTime) {
  auto p = makePool(false);
  ASSERT_TRUE(p);
  p->pool.taken(0);
  p->pool.recycle(0);
  for (int i = 0; i < 10; ++i) p->pool.tick();
  EXPECT_FALSE(p->pool.releaseIfIdle());
  EXPECT_TRUE(p->pool.resident());
}

}  // namespace
}  // namespace sluice::ztunnel
