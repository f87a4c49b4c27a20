#include "engine/buffer_pool.h"

namespace sluice::ztunnel {
namespace {
constexpr uint16_t kSmallGroup = 1;
constexpr uint16_t kLargeGroup = 2;
}  // namespace

Result<BufferPool> BufferPool::create(io_uring* ring, const BufferPoolOptions& options, bool mayReleasePages) {
  BufferPool pool;
  pool.mayReleasePages_ = mayReleasePages;
  pool.releaseAfterQuietTicks_ = options.releaseAfterQuietTicks;
  auto small = BufferRing::create(ring, kSmallGroup, options.smallCount, options.smallSize, 0);
  if (!small) return fail(std::move(small.error()).context("small receive buffers"));
  pool.small_.emplace(std::move(*small));
  auto large = BufferRing::create(ring, kLargeGroup, options.largeCount, options.largeSize,
                                  static_cast<uint16_t>(options.smallCount));
  if (!large) return fail(std::move(large.error()).context("large receive buffers"));
  pool.large_.emplace(std::move(*large));
  return pool;
}

void BufferPool::taken(uint16_t id) {
  resident_ = true;
  quietTicks_ = 0;
  if (small_->owns(id)) {
    small_->taken();
  } else {
    large_->taken();
  }
}

bool BufferPool::releaseIfIdle() {
  if (!mayReleasePages_ || !resident_ || inUse() != 0 || quietTicks_ < releaseAfterQuietTicks_) return false;
  small_->releasePages();
  large_->releasePages();
  resident_ = false;
  return true;
}

void BufferPool::recycle(uint16_t id) {
  recycled_ = true;
  if (small_->owns(id)) {
    small_->recycle(id);
  } else {
    large_->recycle(id);
  }
}

}  // namespace sluice::ztunnel
