// Authorization at L4 with Istio's AuthorizationPolicy semantics, as a pure function:
//   1. policies apply to a workload when they live in its namespace (or the root namespace)
//      and their selector matches its labels (no selector: the whole namespace);
//   2. any matching DENY policy denies;
//   3. with no ALLOW policy applying, everything not denied is allowed;
//   4. otherwise a connection must match at least one ALLOW policy.
// A policy matches when any of its rules does; a rule matches when any of its `from` entries
// and any of its `to` entries match (an absent list matches everything); a source or operation
// matches when every field it sets matches. A policy with no rules matches nothing (so an empty
// ALLOW policy denies everything it selects). Principals and namespaces come from the peer's
// verified identity: a plaintext peer has none, so `principals`/`namespaces` never match it and
// `notPrincipals`/`notNamespaces` always do.
// Not wired into the data path yet: that comes with HBONE (issue 6).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "sluice/config/v1/config.pb.h"

namespace sluice::ztunnel {

struct ConnectionAttributes {
  std::string principal;  // "cluster.local/ns/shop/sa/web" (the SPIFFE ID without "spiffe://"), "" if none
  std::string sourceIp;   // the peer's address
  uint16_t destinationPort = 0;
};

struct AuthzResult {
  bool allowed;
  std::string policy;  // "namespace/name" that decided, "" when no policy did
  std::string reason;
};

// The policies of `all` that apply to a workload in `ns` with `labels`.
std::vector<const config::v1::AuthorizationPolicy*> applicablePolicies(
    const std::vector<const config::v1::AuthorizationPolicy*>& all, const std::string& ns,
    const std::map<std::string, std::string>& labels, const std::string& rootNamespace = "istio-system");

AuthzResult authorize(const std::vector<const config::v1::AuthorizationPolicy*>& policies,
                      const ConnectionAttributes& connection);

}  // namespace sluice::ztunnel
