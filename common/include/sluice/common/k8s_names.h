// Names as Kubernetes validates them, and the workload SPIFFE identity built from them: one
// rule, used where configuration is loaded (controller) and where a peer's certificate is
// judged (the tunnel), so the two cannot drift.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace sluice {

// Lowercase letters, digits, '-' and '.', 1-253 characters, not starting or ending with '-'
// (object names, namespaces as the loader has always taken them).
bool isDnsLabel(std::string_view s);
// A DNS-1123 subdomain: isDnsLabel, and no empty label, no label starting or ending with '-'
// (service accounts and nodes: they become part of a SPIFFE identity and a certificate SAN).
bool isDnsSubdomain(std::string_view s);

struct WorkloadIdentity {
  std::string ns, serviceAccount;
  bool operator==(const WorkloadIdentity&) const = default;
};
// `id` as a workload identity of `trustDomain`: exactly "spiffe://<td>/ns/<ns>/sa/<sa>" with a
// valid namespace and service account; nullopt for anything else (another domain, a node
// credential's "spiffe://<td>/sluice/node/<n>", extra or empty path segments).
std::optional<WorkloadIdentity> parseWorkloadIdentity(std::string_view id, std::string_view trustDomain);

}  // namespace sluice
