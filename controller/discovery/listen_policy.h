// Where the controller may serve plaintext discovery (15010, Istio's insecure xDS port). It
// hands out every workload, policy and node name to whoever connects, and names nodes by what
// they claim; with the CA on, nodes use the mTLS port (15012) and plaintext stays on loopback
// (local tools) or off. A pure decision, tested by a table.
#pragma once

#include <string>
#include <string_view>

#include "sluice/common/error.h"

namespace sluice::controller {

// "127.x.y.z:port", "[::1]:port" or "localhost:port".
bool isLoopbackAddress(std::string_view hostPort);

// The plaintext discovery address to serve ("": none) for `requested` (--listen, given on the
// command line when `explicitlySet`). With the CA on: none unless asked, and only on loopback;
// a wider address is an error naming why. Without the CA: as requested.
Result<std::string> plaintextDiscoveryAddress(std::string_view requested, bool explicitlySet, bool caEnabled);

}  // namespace sluice::controller
