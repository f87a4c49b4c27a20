// Runs a Sluice program with only the capabilities it declares (`--print-requirements`), so
// every simulated node, and so every e2e test, proves the declared list is enough: a
// capability the code needs but the list forgot fails the tests, not a user's cluster.
#pragma once

#include <string>
#include <vector>

#include "sluice/common/error.h"

namespace sluice::sim {

// The capability names of a `--print-requirements` JSON document, as setpriv spells them
// ("CAP_NET_ADMIN" -> "net_admin"), joined into a bounding-set argument "-all,+bpf,+net_admin".
Result<std::string> boundingSetArgument(std::string_view requirementsJson);

// argv prefixed with `setpriv --bounding-set <only the declared capabilities> --`; argv[0]
// must be a Sluice program that understands --print-requirements.
Result<std::vector<std::string>> withOnlyDeclaredCapabilities(std::vector<std::string> argv);

}  // namespace sluice::sim
