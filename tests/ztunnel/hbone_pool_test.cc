// The HBONE pool's rules (proxy/hbone_pool.h) over fake connections: reuse within a key only,
// only connections that take another stream, removal on close, and idle release.
#include <gtest/gtest.h>

#include "proxy/hbone_pool.h"

namespace sluice::ztunnel {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct FakeConnection {
  bool accepts = true;
  size_t streams = 0;
  Clock::time_point used = Clock::time_point{} + 1h;
  bool acceptsStreams() const { return accepts; }
  size_t openStreams() const { return streams; }
  Clock::time_point lastUsed() const { return used; }
};

SocketAddress at(const char* text) { return *SocketAddress::parse(text); }

TEST(HbonePool, ReusesAConnectionOnlyForTheSameKey) {
  HbonePool<FakeConnection> pool(30s);
  PoolKey key = poolKey("pod-a", "spiffe://td/ns/a/sa/x", "spiffe://td/ns/b/sa/y", at("10.0.0.2:8080"));
  FakeConnection c;
  pool.add(key, &c);
  // Another port of the same destination shares the connection: HBONE goes to 15008.
  EXPECT_EQ(pool.find(poolKey("pod-a", "spiffe://td/ns/a/sa/x", "spiffe://td/ns/b/sa/y", at("10.0.0.2:9090"))), &c);
  EXPECT_EQ(key.destination, "10.0.0.2:15008");
  // Any other field differs: never shared.
  EXPECT_EQ(pool.find(poolKey("pod-b", "spiffe://td/ns/a/sa/x", "spiffe://td/ns/b/sa/y", at("10.0.0.2:8080"))), nullptr);
  EXPECT_EQ(pool.find(poolKey("pod-a", "spiffe://td/ns/a/sa/other", "spiffe://td/ns/b/sa/y", at("10.0.0.2:8080"))), nullptr);
  EXPECT_EQ(pool.find(poolKey("pod-a", "spiffe://td/ns/a/sa/x", "spiffe://td/ns/b/sa/z", at("10.0.0.2:8080"))), nullptr);
  EXPECT_EQ(pool.find(poolKey("pod-a", "spiffe://td/ns/a/sa/x", "spiffe://td/ns/b/sa/y", at("10.0.0.3:8080"))), nullptr);
}

TEST(HbonePool, HandsOutOnlyConnectionsThatTakeAnotherStream) {
  HbonePool<FakeConnection> pool(30s);
  PoolKey key = poolKey("pod", "spiffe://td/ns/a/sa/x", "spiffe://td/ns/b/sa/y", at("[fd00::2]:80"));
  EXPECT_EQ(key.destination, "[fd00::2]:15008");
  FakeConnection full, open;
  full.accepts = false;  // at MAX_CONCURRENT_STREAMS, or closing
  pool.add(key, &full);
  EXPECT_EQ(pool.find(key), nullptr);
  pool.add(key, &open);
  EXPECT_EQ(pool.find(key), &open);
  EXPECT_EQ(pool.size(), 2u);
  pool.remove(key, &open);
  EXPECT_EQ(pool.find(key), nullptr);
  pool.remove(key, &full);
  EXPECT_EQ(pool.size(), 0u);
  pool.remove(key, &full);  // removing twice is harmless
}

TEST(HbonePool, ReleasesOnlyConnectionsIdleWithoutStreamsPastTheTimeout) {
  HbonePool<FakeConnection> pool(30s);
  PoolKey key = poolKey("pod", "a", "b", at("10.0.0.2:80"));
  Clock::time_point t0 = Clock::time_point{} + 1h;
  FakeConnection busy, recent, idle;
  busy.streams = 3;
  busy.used = t0 - 10min;
  recent.used = t0 - 10s;
  idle.used = t0 - 31s;
  for (auto* c : {&busy, &recent, &idle}) pool.add(key, c);
  auto expired = pool.expired(t0);
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0], &idle);
  EXPECT_FALSE(pool.idle(busy, t0));
  EXPECT_FALSE(pool.idle(recent, t0));
  EXPECT_TRUE(pool.idle(recent, t0 + 21s));
}

}  // namespace
}  // namespace sluice::ztunnel
