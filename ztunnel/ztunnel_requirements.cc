#include "ztunnel_requirements.h"

#include <linux/capability.h>

namespace sluice::ztunnel {

ProcessRequirements ztunnelRequirements() {
  return {
      .program = "ztunnel",
      .capabilities =
          {
              {CAP_SYS_ADMIN, "CAP_SYS_ADMIN", "open listeners and upstream sockets inside each pod's network namespace (setns)"},
              {CAP_NET_ADMIN, "CAP_NET_ADMIN",
               "mark its own sockets (SO_MARK) so capture never redirects them; deliver from a client's address "
               "(IP_TRANSPARENT)"},
              {CAP_BPF, "CAP_BPF",
               "read the agent's pinned maps (original destinations, inbound listeners) and register its deliveries"},
          },
      .hostPaths =
          {
              {"/run/sluice", "the agent's tunnel socket (pods and their namespaces arrive over it)"},
              {"/sys/fs/bpf", "the agent's pinned maps"},
          },
  };
}

}  // namespace sluice::ztunnel
