#include "proxy/load_balancer.h"

#include <xxhash.h>

#include <algorithm>
#include <bit>
#include <fmt/format.h>
#include <numeric>

namespace sluice::ztunnel {

uint64_t hashKey(std::string_view key) { return XXH64(key.data(), key.size(), 0); }

HashTable HashTable::ringHash(const std::vector<Candidate>& candidates, uint64_t minimumSize) {
  HashTable t;
  if (candidates.empty()) return t;
  uint64_t weightSum = 0;
  for (const auto& c : candidates) weightSum += std::max<uint32_t>(c.weight, 1);
  // Points per unit of weight, rounded up to a power of two: the ring holds between
  // minimumSize and twice that, and a candidate keeps the same points when another one comes
  // or goes unless that crosses a power of two, so only the keys of the one that changed move.
  uint64_t perWeight = std::bit_ceil(std::max<uint64_t>((minimumSize + weightSum - 1) / weightSum, 1));
  for (uint32_t i = 0; i < candidates.size(); ++i) {
    uint64_t points = perWeight * std::max<uint32_t>(candidates[i].weight, 1);
    for (uint64_t p = 0; p < points; ++p) t.ring_.emplace_back(hashKey(fmt::format("{}_{}", candidates[i].address, p)), i);
  }
  std::sort(t.ring_.begin(), t.ring_.end());
  return t;
}

HashTable HashTable::maglev(const std::vector<Candidate>& candidates, uint64_t tableSize) {
  HashTable t;
  if (candidates.empty() || tableSize == 0) return t;
  const uint64_t m = tableSize;
  struct State {
    uint64_t offset, skip, next = 0;
    double weight, progress = 0;
  };
  uint32_t maxWeight = 1;
  for (const auto& c : candidates) maxWeight = std::max(maxWeight, c.weight);
  std::vector<State> states;
  states.reserve(candidates.size());
  for (const auto& c : candidates) {
    uint64_t h = hashKey(c.address);
    // Two independent hashes of the name give each candidate its own permutation of the slots.
    states.push_back({h % m, (XXH64(c.address.data(), c.address.size(), 1) % (m - 1)) + 1, 0,
                      static_cast<double>(std::max<uint32_t>(c.weight, 1)) / maxWeight});
  }
  t.table_.assign(m, UINT32_MAX);
  uint64_t filled = 0;
  // Rounds: a candidate takes a slot whenever its accumulated weight reaches one, so each
  // fills slots in proportion to its weight (the heaviest one every round).
  while (filled < m) {
    for (uint32_t i = 0; i < states.size() && filled < m; ++i) {
      State& s = states[i];
      s.progress += s.weight;
      if (s.progress < 1.0) continue;
      s.progress -= 1.0;
      uint64_t slot;
      do {
        slot = (s.offset + s.next * s.skip) % m;
        ++s.next;
      } while (t.table_[slot] != UINT32_MAX);
      t.table_[slot] = i;
      ++filled;
    }
  }
  return t;
}

int HashTable::pick(uint64_t hash) const {
  if (!table_.empty()) return static_cast<int>(table_[hash % table_.size()]);
  if (ring_.empty()) return -1;
  auto it = std::lower_bound(ring_.begin(), ring_.end(), std::make_pair(hash, uint32_t{0}));
  if (it == ring_.end()) it = ring_.begin();  // the ring wraps
  return static_cast<int>(it->second);
}

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The value of `name` in a "a=1; b=2" list split on `separator`; nullopt when absent.
std::optional<std::string_view> findPair(std::string_view list, std::string_view name, char separator) {
  while (!list.empty()) {
    size_t end = list.find(separator);
    std::string_view pair = trim(list.substr(0, end));
    list = end == std::string_view::npos ? std::string_view{} : list.substr(end + 1);
    size_t eq = pair.find('=');
    if (eq != std::string_view::npos && pair.substr(0, eq) == name) return pair.substr(eq + 1);
    if (eq == std::string_view::npos && pair == name) return std::string_view{};
  }
  return std::nullopt;
}

}  // namespace

std::optional<uint64_t> requestHash(const LbPolicy& policy, const HashInput& input, uint64_t random,
                                    std::optional<std::string>* newCookie) {
  switch (policy.key) {
    case LbPolicy::HashKey::kHeader:
      if (input.header == nullptr) return std::nullopt;
      return hashKey(*input.header);
    case LbPolicy::HashKey::kSourceIp:
      if (input.sourceIp.empty()) return std::nullopt;
      return hashKey(input.sourceIp);
    case LbPolicy::HashKey::kQueryParameter: {
      auto value = findPair(input.query, policy.keyName, '&');
      if (!value) return std::nullopt;
      return hashKey(*value);
    }
    case LbPolicy::HashKey::kCookie: {
      if (auto value = findPair(input.cookieHeader, policy.keyName, ';')) return hashKey(*value);
      if (policy.cookieTtl.count() <= 0 || newCookie == nullptr) return std::nullopt;
      std::string value = fmt::format("{:016x}", random);
      uint64_t h = hashKey(value);
      *newCookie = std::move(value);
      return h;
    }
  }
  return std::nullopt;
}

std::string setCookieValue(const LbPolicy& policy, const std::string& value) {
  std::string out = policy.keyName + "=" + value;
  if (!policy.cookiePath.empty()) out += "; Path=" + policy.cookiePath;
  out += fmt::format("; Max-Age={}; HttpOnly", policy.cookieTtl.count());
  return out;
}

}  // namespace sluice::ztunnel
