// The controller's revoked-node list (revoked-nodes.json in the CA folder), read as hostile
// input. Invariants: no crash or leak; a list the parser accepts holds only DNS-1123 node names
// and non-negative times, serializes to text the parser accepts again as the same list, and the
// resource pushed to the tunnels carries exactly that list.
#include <cstdint>
#include <string_view>

#include "discovery/node_revocations.h"
#include "sluice/common/k8s_names.h"
#include "fuzz_check.h"

using namespace sluice::controller;
using sluice::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = NodeRevocations::parse(text, "fuzz");
  if (!parsed) {
    check(!parsed.error().message().empty());
    return 0;
  }
  for (const auto& [node, at] : parsed->revokedAt()) check(sluice::isDnsSubdomain(node) && at >= 0);
  auto again = NodeRevocations::parse(parsed->serialize(), "fuzz (serialized)");
  check(again.has_value() && again->revokedAt() == parsed->revokedAt());
  auto resource = revokedNodesResource(*parsed);
  const auto& pushed = resource.revoked_nodes().revoked_at_unix();
  check(static_cast<size_t>(pushed.size()) == parsed->revokedAt().size());
  for (const auto& [node, at] : parsed->revokedAt()) {
    auto it = pushed.find(node);
    check(it != pushed.end() && it->second == at);
  }
  return 0;
}
