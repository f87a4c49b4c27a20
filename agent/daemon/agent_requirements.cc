#include "daemon/agent_requirements.h"

#include <linux/capability.h>

namespace sluice::agent {

ProcessRequirements agentRequirements() {
  return {
      .program = "sluice-agent",
      .capabilities =
          {
              {CAP_BPF, "CAP_BPF", "load the capture programs, create and pin their maps"},
              {CAP_NET_ADMIN, "CAP_NET_ADMIN",
               "load and attach networking BPF programs (cgroup connect/sockops/getpeername/getsockname, sk_lookup per pod); "
               "set the routing rule for transparent delivery in each pod"},
              {CAP_SYS_ADMIN, "CAP_SYS_ADMIN",
               "enter a pod's network namespace (setns) to read its cookie and set its routing; mount bpffs when the node "
               "has none"},
          },
      .hostPaths =
          {
              {"/sys/fs/bpf", "bpffs: maps and links are pinned there, so capture outlives an agent restart"},
              {"/sys/fs/cgroup", "the node's cgroup v2 hierarchy, whose root the capture programs attach to"},
              {"/run/sluice", "control socket for sluice-cni and sluicectl, tunnel socket for ztunnel"},
              {"/var/run/netns", "pods' network namespaces, named by the container runtime in CNI calls"},
          },
      .apiResources =
          {
              {.group = "", .resource = "pods", .why = "a pod's service account, labels and annotations when it is enrolled (--kubernetes)",
               .verbs = {"get"}},
          },
  };
}

}  // namespace sluice::agent
