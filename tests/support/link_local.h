// A pod's IPv6 link-local address (fe80::..., without scope), read inside the pod with `ip`:
// the address the CNI result does not report, which capture must cover all the same.
#pragma once

#include <string>

#include "simcluster/cluster.h"
#include "sluice/common/process.h"

namespace sluice::testing {

// "" when the pod has none (IPv6 off) or `ip` failed.
inline std::string linkLocalAddress(const sim::Cluster& cluster, const std::string& pod) {
  auto shown = cluster.runInPod(pod, {.argv = {"ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link"},
                                      .captureOutput = true});
  if (!shown) return "";
  auto line = readLine(shown->stdoutPipe(), std::chrono::seconds(5));
  (void)shown->wait(std::chrono::seconds(5));
  if (!line) return "";
  size_t at = line->find("inet6 fe80::");
  if (at == std::string::npos) return "";
  return line->substr(at + 6, line->find('/', at) - at - 6);
}

}  // namespace sluice::testing
