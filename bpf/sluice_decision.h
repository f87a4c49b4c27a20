/* The capture decisions, written once and compiled twice: into the kernel programs
 * (sluice_capture.bpf.c) and into the agent, whose `sluicectl explain` answers "would this
 * connect be redirected, and why?" with the very same code (agent/daemon/explain.cc). Plain C,
 * no helpers and no maps: what needs a map lookup is done by the caller, after these checks and
 * in the order documented here. Addresses are 16 bytes, IPv6 or IPv4-mapped; ports host order.
 * (Cilium's bpf/lib/ keeps its shared logic the same way.) */
#ifndef SLUICE_DECISION_H
#define SLUICE_DECISION_H

#include "sluice_capture.h"

#define SLUICE_INLINE static inline __attribute__((always_inline))

SLUICE_INLINE int sluice_is_v4_mapped(const __u8 *a) {
  for (int i = 0; i < 10; i++)
    if (a[i]) return 0;
  return a[10] == 0xff && a[11] == 0xff;
}

SLUICE_INLINE int sluice_is_loopback(const __u8 *a) {
  if (sluice_is_v4_mapped(a)) return a[12] == 127;
  for (int i = 0; i < 15; i++)
    if (a[i]) return 0;
  return a[15] == 1;
}

SLUICE_INLINE int sluice_same_addr(const __u8 *a, const __u8 *b) {
  __u64 x[2], y[2];
  __builtin_memcpy(x, a, 16);
  __builtin_memcpy(y, b, 16);
  return x[0] == y[0] && x[1] == y[1];
}

SLUICE_INLINE int sluice_is_pod_addr(const struct sluice_pod *pod, const __u8 *a) {
  for (int i = 0; i < SLUICE_MAX_POD_ADDRS; i++) {
    if ((__u32)i < pod->addr_count && sluice_same_addr(pod->addrs[i], a)) return 1;
  }
  return 0;
}

/* The pod address a redirected socket reports as its own (getsockname): the connect rewrite
 * bound it to loopback, where an app that had not been captured would be bound to its pod
 * address, as with Istio's in-pod REDIRECT. The first of the pod's addresses of the family the
 * connection has on the wire (`v4`: IPv4, also for an AF_INET6 socket with a v4-mapped
 * destination); -1 when the pod has none, and the loopback address is left as it is. */
SLUICE_INLINE int sluice_local_addr_index(const struct sluice_pod *pod, int v4) {
  for (int i = 0; i < SLUICE_MAX_POD_ADDRS; i++) {
    if ((__u32)i < pod->addr_count && sluice_is_v4_mapped(pod->addrs[i]) == (v4 ? 1 : 0)) return i;
  }
  return -1;
}

SLUICE_INLINE int sluice_port_listed(const __u16 *ports, __u16 port) {
  for (int i = 0; i < SLUICE_MAX_EXCLUDED_PORTS; i++) {
    if (ports[i] && ports[i] == port) return 1;
  }
  return 0;
}

/* Outbound: a connect() from an enrolled pod whose redirection is on. In order: the tunnel's own
 * socket (its mark, or its delivery mark), a loopback destination, one of the pod's own addresses, an excluded port. Returns that
 * reason, or SLUICE_CTR_REDIRECTED when none applies; the caller then checks the pod's excluded
 * CIDRs (an LPM map in the kernel) before redirecting. */
SLUICE_INLINE int sluice_outbound_reason(const struct sluice_pod *pod, int has_tunnel_mark, const __u8 *dst, __u16 port) {
  if (has_tunnel_mark) return SLUICE_CTR_BYPASS_MARK;
  if (sluice_is_loopback(dst)) return SLUICE_CTR_EXCLUDED_LOOPBACK;
  if (sluice_is_pod_addr(pod, dst)) return SLUICE_CTR_EXCLUDED_SELF;
  if (sluice_port_listed(pod->exclude_outbound_ports, port)) return SLUICE_CTR_EXCLUDED_PORT;
  return SLUICE_CTR_REDIRECTED;
}

/* Whether a connection sk_lookup sees can be one of the tunnel's deliveries, which the caller
 * then looks up in sluice_deliveries: only one that arrived on the pod's loopback device, where
 * every delivery socket is bound. Packets from outside arrive on the pod's veth: a registered
 * address there is a spoof, or a registration left behind by a tunnel that died, and letting it
 * through would hand the app a connection the tunnel never checked. */
SLUICE_INLINE int sluice_can_be_tunnel_delivery(__u32 ingress_ifindex) {
  return ingress_ifindex == SLUICE_LOOPBACK_IFINDEX;
}

/* Inbound: TCP to any non-loopback address of an enrolled pod whose redirection is on (every
 * address: the ones CNI reported, and link-local or SLAAC ones nobody reported). In order: the
 * HBONE port (the tunnel's own listener takes it), a local source (the tunnel delivering a
 * connection from its client's address: registered, and sluice_can_be_tunnel_delivery; a
 * loopback source; one of the pod's known addresses; or the destination itself: the pod
 * talking to an address of its own), an excluded port. Returns that reason, or
 * SLUICE_CTR_INBOUND_CAPTURED when none applies; the caller then steers the connection to the
 * tunnel's listener, or drops it when there is none. */
SLUICE_INLINE int sluice_inbound_reason(const struct sluice_pod *pod, const __u8 *src, const __u8 *dst, __u16 dst_port,
                                        int tunnel_delivery) {
  if (dst_port == SLUICE_PORT_HBONE) return SLUICE_CTR_INBOUND_HBONE;
  if (tunnel_delivery || sluice_is_loopback(src) || sluice_is_pod_addr(pod, src) || sluice_same_addr(src, dst)) {
    return SLUICE_CTR_INBOUND_LOCAL_SOURCE;
  }
  if (sluice_port_listed(pod->exclude_inbound_ports, dst_port)) return SLUICE_CTR_INBOUND_EXCLUDED_PORT;
  return SLUICE_CTR_INBOUND_CAPTURED;
}

#endif /* SLUICE_DECISION_H */
