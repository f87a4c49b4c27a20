// Load balancing as Istio's DestinationRule defines it: consistent-hash tables (ring hash,
// Maglev), request hash keys and the cookie a request without one gets, LEAST_REQUEST's two
// choices, and the policies a snapshot builds from YAML (subset overrides). Pure functions.
#include "proxy/load_balancer.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <map>

#include "support/config_text.h"
#include "proxy/outbound_decision.h"
#include "proxy/snapshot_builder.h"

namespace sluice::ztunnel {
namespace {

std::vector<HashTable::Candidate> candidates(int n, uint32_t weight = 1) {
  std::vector<HashTable::Candidate> out;
  for (int i = 0; i < n; ++i) out.push_back({fmt::format("10.244.1.{}", i + 2), weight});
  return out;
}

HashTable build(bool maglev, const std::vector<HashTable::Candidate>& c) {
  return maglev ? HashTable::maglev(c, 65537) : HashTable::ringHash(c, 1024);
}

class HashTables : public ::testing::TestWithParam<bool> {};  // true: Maglev

TEST_P(HashTables, SpreadByWeightAndStayPut) {
  auto c = candidates(3);
  c[2].weight = 2;  // half of the keys
  HashTable t = build(GetParam(), c);
  std::map<int, int> hits;
  for (int k = 0; k < 20000; ++k) ++hits[t.pick(hashKey(fmt::format("user-{}", k)))];
  // Expected 5000 / 5000 / 10000; a ring of 1024 points is coarser than a Maglev table.
  EXPECT_NEAR(hits[0], 5000, 1250);
  EXPECT_NEAR(hits[1], 5000, 1250);
  EXPECT_NEAR(hits[2], 10000, 1500);
  // Deterministic: the same key, the same candidate, in a table built again.
  HashTable again = build(GetParam(), c);
  for (int k = 0; k < 1000; ++k) {
    uint64_t h = hashKey(fmt::format("user-{}", k));
    EXPECT_EQ(t.pick(h), again.pick(h));
  }
}

TEST_P(HashTables, RemovingOneEndpointMovesLittleMoreThanItsKeys) {
  auto five = candidates(5);
  auto four = five;
  four.erase(four.begin() + 2);  // 10.244.1.4 leaves; the others keep their addresses
  HashTable before = build(GetParam(), five), after = build(GetParam(), four);
  int moved = 0, onRemoved = 0;
  for (int k = 0; k < 10000; ++k) {
    uint64_t h = hashKey(fmt::format("k{}", k));
    const std::string& was = five[before.pick(h)].address;
    const std::string& now = four[after.pick(h)].address;
    onRemoved += was == "10.244.1.4";
    moved += was != now;
  }
  EXPECT_GE(moved, onRemoved);  // its keys had to move
  // Ring hash moves only those; Maglev a few more (it trades a little disruption for balance).
  EXPECT_LE(moved, onRemoved + (GetParam() ? 600 : 0)) << "of 10000 keys";
}

INSTANTIATE_TEST_SUITE_P(RingHashAndMaglev, HashTables, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& p) { return p.param ? "Maglev" : "RingHash"; });

TEST(HashTables, EmptyTablesPickNothing) {
  EXPECT_EQ(HashTable::ringHash({}, 1024).pick(42), -1);
  EXPECT_EQ(HashTable::maglev({}, 65537).pick(42), -1);
  EXPECT_EQ(HashTable::ringHash(candidates(1), 1024).pick(42), 0);
}

TEST(RequestHash, KeysComeFromTheRequestOrAreAbsent) {
  LbPolicy header{.kind = LbPolicy::Kind::kConsistentHash, .key = LbPolicy::HashKey::kHeader, .keyName = "x-user"};
  LbPolicy query = header;
  query.key = LbPolicy::HashKey::kQueryParameter;
  query.keyName = "shard";
  LbPolicy source = header;
  source.key = LbPolicy::HashKey::kSourceIp;
  LbPolicy cookie = header;
  cookie.key = LbPolicy::HashKey::kCookie;
  cookie.keyName = "session";
  cookie.cookiePath = "/";
  const std::string alice = "alice";
  struct Case {
    const char* what;
    const LbPolicy* policy;
    HashInput input;
    std::optional<uint64_t> want;
  };
  const Case cases[] = {
      {"header present", &header, {&alice, "", "", ""}, hashKey("alice")},
      {"header absent", &header, {nullptr, "", "", ""}, std::nullopt},
      {"query parameter", &query, {nullptr, "", "a=1&shard=7&b", ""}, hashKey("7")},
      {"query parameter absent", &query, {nullptr, "", "a=1&shardx=7", ""}, std::nullopt},
      {"source ip", &source, {nullptr, "", "", "10.244.0.2"}, hashKey("10.244.0.2")},
      {"cookie among others", &cookie, {nullptr, "a=1; session=s-42 ;b=2", "", ""}, hashKey("s-42")},
      {"cookie absent, no ttl: no key", &cookie, {nullptr, "a=1", "", ""}, std::nullopt},
  };
  for (const auto& c : cases) {
    std::optional<std::string> fresh;
    EXPECT_EQ(requestHash(*c.policy, c.input, 7, &fresh), c.want) << c.what;
    EXPECT_FALSE(fresh) << c.what;
  }
}

TEST(RequestHash, ACookieWithATtlIsMadeWhenAbsentAndItsHashIsTheOneUsed) {
  LbPolicy cookie{.kind = LbPolicy::Kind::kConsistentHash, .key = LbPolicy::HashKey::kCookie, .keyName = "session",
                  .cookiePath = "/shop", .cookieTtl = std::chrono::seconds(3600)};
  std::optional<std::string> fresh;
  auto h = requestHash(cookie, {nullptr, "", "", ""}, 0xabcdef, &fresh);
  ASSERT_TRUE(fresh);
  EXPECT_EQ(*fresh, "0000000000abcdef");
  EXPECT_EQ(h, hashKey(*fresh));  // the next request, carrying the cookie, hashes the same
  EXPECT_EQ(setCookieValue(cookie, *fresh), "session=0000000000abcdef; Path=/shop; Max-Age=3600; HttpOnly");
}

const std::string kService = testing::webServiceYaml() + R"(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: shop}
spec:
  host: web
  trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: X-User, maglev: {tableSize: 251}}}}
  subsets:
  - {name: v1, labels: {version: v1}, trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}}
  - {name: v2, labels: {version: v2}}
)";

ConfigSnapshot snapshotOf(const std::string& yaml) {
  auto snapshot = buildSnapshot(testing::resourcesFromYaml(yaml));
  EXPECT_TRUE(snapshot) << snapshot.error().message();
  return snapshot ? *snapshot : ConfigSnapshot{};
}

TEST(LoadBalancing, DestinationRulePoliciesWithSubsetOverrides) {
  ConfigSnapshot snapshot = snapshotOf(kService);
  ASSERT_TRUE(snapshot.servicesByVip.contains("10.96.0.10:80"));
  const ServiceEntry& web = *snapshot.servicesByVip.at("10.96.0.10:80");
  EXPECT_EQ(web.loadBalancer.kind, LbPolicy::Kind::kConsistentHash);
  EXPECT_EQ(web.loadBalancer.keyName, "x-user");  // header names compare lowercase
  EXPECT_EQ(web.loadBalancer.algorithm, LbPolicy::Algorithm::kMaglev);
  EXPECT_EQ(web.loadBalancerFor("v1").kind, LbPolicy::Kind::kLeastRequest);
  EXPECT_EQ(web.loadBalancerFor("v2").kind, LbPolicy::Kind::kConsistentHash);  // inherits the rule's
  ASSERT_TRUE(web.hashTables.contains(""));
  ASSERT_TRUE(web.hashTables.contains("v2"));
  EXPECT_FALSE(web.hashTables.contains("v1"));
  EXPECT_EQ(web.hashTables.at("").table->size(), 251u);

  // The whole service: one user always reaches one endpoint; users spread over all three.
  std::map<std::string, int> endpoints;
  for (int user = 0; user < 300; ++user) {
    uint64_t h = hashKey(fmt::format("user-{}", user));
    const auto* first = pickEndpoint(web, "", nullptr, {.random = 1, .hash = h});
    for (uint64_t r = 2; r < 6; ++r) EXPECT_EQ(pickEndpoint(web, "", nullptr, {.random = r, .hash = h}), first);
    ++endpoints[first->address];
  }
  EXPECT_EQ(endpoints.size(), 3u);
  // Subset v2 has one endpoint: every key lands on it.
  std::map<std::string, std::string> v2{{"version", "v2"}};
  EXPECT_EQ(pickEndpoint(web, "v2", &v2, {.hash = 12345})->address, "10.244.1.4");
}

TEST(LoadBalancing, LeastRequestPicksTheLessLoadedOfTwoChoices) {
  ConfigSnapshot snapshot = snapshotOf(kService);
  const ServiceEntry& web = *snapshot.servicesByVip.at("10.96.0.10:80");
  std::map<std::string, std::string> v1{{"version", "v1"}};
  OutstandingRequests load{{"10.244.1.2", 5}};  // a is busy, b idle
  // random's halves pick (a, b) and (b, a): b wins both ways; (a, a) leaves only a.
  uint64_t ab = (uint64_t{0} << 32) | 1, ba = (uint64_t{1} << 32) | 0, aa = 0;
  EXPECT_EQ(pickEndpoint(web, "v1", &v1, {.random = ab, .outstanding = &load})->address, "10.244.1.3");
  EXPECT_EQ(pickEndpoint(web, "v1", &v1, {.random = ba, .outstanding = &load})->address, "10.244.1.3");
  EXPECT_EQ(pickEndpoint(web, "v1", &v1, {.random = aa, .outstanding = &load})->address, "10.244.1.2");
  load = {{"10.244.1.3", 9}};
  EXPECT_EQ(pickEndpoint(web, "v1", &v1, {.random = ab, .outstanding = &load})->address, "10.244.1.2");
}

}  // namespace
}  // namespace sluice::ztunnel
