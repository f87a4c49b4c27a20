// What a Sluice program needs from its host to run: Linux capabilities, host folders and
// Kubernetes API resources it reads, each with the reason. One table per program, kept next to its main, used three ways:
//   - the program checks its effective capabilities at start and refuses to run without one,
//     naming it and why (fail closed: no half-working capture because a grant was forgotten);
//   - `--print-requirements` prints the table as JSON;
//   - the Helm chart's check (tools/chart/check_chart.mjs) reads that JSON from the built
//     binaries and verifies the DaemonSet grants those capabilities and mounts those host
//     folders, so the chart cannot drift from the code.
// Least privilege: a capability is listed only when a named operation needs it.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "sluice/common/error.h"

namespace sluice {

struct CapabilityNeed {
  int capability;    // CAP_* number
  std::string name;  // "CAP_BPF" (Kubernetes' securityContext drops the "CAP_" prefix)
  std::string why;
};

struct HostPathNeed {
  std::string hostPath;  // on the node, e.g. /sys/fs/bpf
  std::string why;
};

// Kubernetes API access, for the Helm chart's RBAC (read-only verbs).
struct ApiResourceNeed {
  std::string group;  // "" for the core group
  std::string resource;
  std::string why;
  std::vector<std::string> verbs = {"get", "list", "watch"};
};

struct ProcessRequirements {
  std::string program;
  std::vector<CapabilityNeed> capabilities;
  std::vector<HostPathNeed> hostPaths;
  std::vector<ApiResourceNeed> apiResources = {};
};

nlohmann::json toJson(const ProcessRequirements& requirements);

// The needed capabilities missing from `effective` (a bit mask of CAP_* numbers).
std::vector<CapabilityNeed> missingCapabilities(const ProcessRequirements& requirements, uint64_t effective);

// This process's effective capability set, from capget(2).
Result<uint64_t> effectiveCapabilities();

// Fails naming every missing capability and why it is needed.
Status checkCapabilities(const ProcessRequirements& requirements);

// For a program's `--print-requirements` flag: the table as JSON on stdout.
void printRequirements(const ProcessRequirements& requirements);

// For a program's start: false (after logging what is missing and why) when it lacks a capability.
bool startupCapabilitiesOk(const ProcessRequirements& requirements);

}  // namespace sluice
