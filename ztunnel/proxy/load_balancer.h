// How a request or connection picks among the endpoints of a service (or subset): the
// DestinationRule's loadBalancer as Istio defines it, decided by pure functions.
//
//   ROUND_ROBIN, RANDOM   weighted by endpoint weight
//   LEAST_REQUEST         power of two choices: two weighted random picks, the one with fewer
//                         outstanding requests per unit of weight wins (Envoy's default)
//   consistentHash        a key from the request (header, cookie, source IP, query parameter)
//                         hashed with xxHash64 (as Envoy) into a ring hash or a Maglev table
//                         built once per configuration snapshot; no key: as RANDOM
//
// Tables are immutable once built and shared by every worker through the snapshot.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "proxy/locality.h"

namespace sluice::ztunnel {

struct LbPolicy {
  enum class Kind { kRoundRobin, kRandom, kLeastRequest, kConsistentHash } kind = Kind::kRoundRobin;
  enum class HashKey { kHeader, kCookie, kSourceIp, kQueryParameter } key = HashKey::kHeader;
  std::string keyName;  // header (lowercase), cookie or query parameter name
  std::string cookiePath;
  std::chrono::seconds cookieTtl{0};  // > 0: set the cookie when a request has none
  enum class Algorithm { kRingHash, kMaglev } algorithm = Algorithm::kRingHash;
  uint64_t minimumRingSize = 1024;
  uint64_t maglevTableSize = 65537;
  // localityLbSetting (proxy/locality.h): requested here, in force when outlier detection is
  // on for the same destination (Istio's rule).
  LocalityLbPolicy locality;
};

// A consistent-hash lookup over candidates 0..n-1 (indices into the caller's endpoint list).
class HashTable {
 public:
  struct Candidate {
    std::string address;  // what places it (its identity across snapshots)
    uint32_t weight = 1;
  };
  // Ketama-style ring: each candidate gets points in proportion to its weight, between
  // `minimumSize` and twice that in all; a hash goes to the first point at or after it.
  static HashTable ringHash(const std::vector<Candidate>& candidates, uint64_t minimumSize);
  // Maglev (Google's, with Envoy's weighting): a prime-sized table filled by each candidate's
  // permutation in turns proportional to its weight; a hash indexes it.
  static HashTable maglev(const std::vector<Candidate>& candidates, uint64_t tableSize);

  // The candidate for `hash`; -1 when the table is empty.
  int pick(uint64_t hash) const;
  size_t size() const { return ring_.empty() ? table_.size() : ring_.size(); }

 private:
  std::vector<std::pair<uint64_t, uint32_t>> ring_;  // sorted by hash
  std::vector<uint32_t> table_;                      // maglev
};

uint64_t hashKey(std::string_view key);  // xxHash64, seed 0

// The request facts a hash key may come from.
struct HashInput {
  const std::string* header = nullptr;  // the named header's value, null when absent
  std::string_view cookieHeader;        // the request's Cookie field ("" when absent)
  std::string_view query;               // the target's query (after '?')
  std::string_view sourceIp;
};

// The hash of a request's key under `policy`, or nullopt when the request has none (then the
// endpoint is chosen at random). For a cookie policy with a ttl and no cookie, `newCookie`
// gets a fresh value (from `random`) whose hash is returned: the caller sets the cookie on the
// response (setCookieValue) so the client's next requests carry it.
std::optional<uint64_t> requestHash(const LbPolicy& policy, const HashInput& input, uint64_t random,
                                    std::optional<std::string>* newCookie);
// "name=value; Path=/p; Max-Age=N; HttpOnly"
std::string setCookieValue(const LbPolicy& policy, const std::string& value);

// Outstanding requests per endpoint address, as this worker sees them (LEAST_REQUEST).
using OutstandingRequests = std::unordered_map<std::string, uint32_t>;

}  // namespace sluice::ztunnel
