#include "support/privileged.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

namespace sluice::testing {
namespace {

// Effective capability mask from /proc/self/status ("CapEff:\t000001ffffffffff").
unsigned long long effectiveCapabilities() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("CapEff:", 0) == 0) return std::stoull(line.substr(7), nullptr, 16);
  }
  return 0;
}

}  // namespace

std::string missingPrivileges() {
  constexpr int kCapNetAdmin = 12, kCapSysAdmin = 21, kCapBpf = 39;
  if (::geteuid() != 0) return "not running as root";
  unsigned long long caps = effectiveCapabilities();
  std::string missing;
  for (auto [bit, name] : {std::pair{kCapNetAdmin, "CAP_NET_ADMIN"}, {kCapSysAdmin, "CAP_SYS_ADMIN"},
                           {kCapBpf, "CAP_BPF"}}) {
    if ((caps & (1ull << bit)) == 0) missing += std::string(missing.empty() ? "" : ", ") + name;
  }
  return missing.empty() ? "" : "missing " + missing;
}

bool privilegesRequired() {
  const char* value = std::getenv("SLUICE_REQUIRE_PRIVILEGED");
  return value != nullptr && std::string(value) == "1";
}

}  // namespace sluice::testing
