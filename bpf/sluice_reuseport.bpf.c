// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Sluice listener hand-over: attached (SO_ATTACH_REUSEPORT_EBPF) to every listener the tunnel
 * opens inside a pod. Each pod port is one SO_REUSEPORT group shared by the running tunnel and,
 * during an upgrade, its successor. When the old tunnel closes its listener, the kernel asks
 * this program where the connections still waiting in that listener's queues go (the
 * "migrate" attach type); it lets the kernel pick another listener of the group, so they are
 * accepted by the successor instead of being reset. Without such a program the kernel migrates
 * only when the pod's net.ipv4.tcp_migrate_req sysctl is 1, which a container cannot set.
 *
 * Ordinary selection (a new connection) is left to the kernel too: returning SK_PASS without
 * choosing a socket falls back to the group's hash. */
#include "vmlinux.h"

#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("sk_reuseport/migrate")
int sluice_reuseport_migrate(struct sk_reuseport_md *ctx) {
  (void)ctx;
  return SK_PASS;
}
