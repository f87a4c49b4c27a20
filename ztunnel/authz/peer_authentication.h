// PeerAuthentication with Istio's semantics, as a pure function: which mTLS mode applies to a
// connection arriving for a workload on a port.
//   - the most specific policy wins: one in the workload's namespace whose selector matches
//     its labels, else the namespace's policy without selector, else the mesh-wide one (root
//     namespace, no selector); several at one level: the oldest wins in Istio, here the first
//     by namespace/name (deterministic);
//   - UNSET inherits from the next level up; the default is PERMISSIVE;
//   - port_level_mtls applies only in a workload (selector) policy, keyed by the target port;
//   - DISABLE means plaintext is allowed, as PERMISSIVE (ztunnel always answers HBONE).
// STRICT: plaintext arriving on 15006 is refused; PERMISSIVE: it is relayed, authorized by its
// source address only (it has no verified identity).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sluice/config/v1/config.pb.h"

namespace sluice::ztunnel {

enum class MtlsMode { kPermissive, kStrict };

struct MtlsDecision {
  MtlsMode mode = MtlsMode::kPermissive;
  std::string policy;  // "namespace/name" that decided; "" for the default
};

MtlsDecision effectiveMtlsMode(const std::vector<std::shared_ptr<const config::v1::PeerAuthentication>>& all,
                               const std::string& ns, const std::map<std::string, std::string>& labels, uint16_t port,
                               const std::string& rootNamespace = "istio-system");

}  // namespace sluice::ztunnel
