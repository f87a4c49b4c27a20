#include "discovery/listen_policy.h"

#include <fmt/format.h>

namespace sluice::controller {

bool isLoopbackAddress(std::string_view hostPort) {
  size_t colon = hostPort.rfind(':');
  if (colon == std::string_view::npos) return false;
  std::string_view host = hostPort.substr(0, colon);
  return host.starts_with("127.") || host == "[::1]" || host == "localhost";
}

Result<std::string> plaintextDiscoveryAddress(std::string_view requested, bool explicitlySet, bool caEnabled) {
  if (!caEnabled) return std::string(requested);
  if (!explicitlySet || requested.empty()) return std::string();
  if (isLoopbackAddress(requested)) return std::string(requested);
  return fail(fmt::format("--listen {}: with --ca-dir, plaintext discovery serves loopback only (it would hand every "
                          "workload, policy and node name to anyone who connects); nodes use --secure-listen",
                          requested));
}

}  // namespace sluice::controller
