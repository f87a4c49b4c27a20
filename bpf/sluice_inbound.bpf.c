// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Sluice inbound capture: one instance of this program per enrolled pod, attached to the pod's
 * network namespace (sk_lookup), with the pod's netns cookie set at load time. Knowing its pod,
 * it decides for every non-loopback address the connection is addressed to: the pod's CNI
 * addresses, and also its IPv6 link-local and SLAAC addresses, which nobody reports to the agent
 * (deciding by a table of known addresses let plaintext to those reach a STRICT app).
 *
 * TCP to any port but 15008 goes to the tunnel's 15006 listener of the pod; an enrolled pod
 * without a listener drops (fail closed; the client's SYN is retried). The decision itself is
 * sluice_inbound_reason (sluice_decision.h). Maps are the node's (sluice_maps.bpf.h), reused. */
#include "vmlinux.h"

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "sluice_decision.h"
#include "sluice_maps.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The network namespace cookie of the pod this instance is attached to (sk_lookup programs
 * cannot ask for it: bpf_get_netns_cookie is not available to them). */
const volatile __u64 pod_netns_cookie = 0;

SEC("sk_lookup")
int sluice_pod_sk_lookup(struct bpf_sk_lookup *ctx) {
  if (ctx->protocol != IPPROTO_TCP) return SK_PASS;
  __u8 dst[16], src[16];
  if (ctx->family == AF_INET) {
    set_v4_mapped(dst, ctx->local_ip4);
    set_v4_mapped(src, ctx->remote_ip4);
  } else {
    __u32 l[4] = {ctx->local_ip6[0], ctx->local_ip6[1], ctx->local_ip6[2], ctx->local_ip6[3]};
    __u32 r[4] = {ctx->remote_ip6[0], ctx->remote_ip6[1], ctx->remote_ip6[2], ctx->remote_ip6[3]};
    set_v6(dst, l);
    set_v6(src, r);
  }
  if (sluice_is_loopback(dst)) return SK_PASS; /* inside the pod: not the mesh's */
  __u64 netns_cookie = pod_netns_cookie;
  struct sluice_pod *pod = bpf_map_lookup_elem(&sluice_pods, &netns_cookie);
  if (!pod || !(pod->flags & SLUICE_POD_REDIRECT)) return SK_PASS;

  __u16 dst_port = (__u16)ctx->local_port;
  __u16 src_port = bpf_ntohs((__u16)ctx->remote_port);
  int tunnel_delivery = 0;
  if (sluice_can_be_tunnel_delivery(ctx->ingress_ifindex)) {
    struct sluice_delivery_key delivery = {.netns_cookie = netns_cookie, .src_port = src_port, .dst_port = dst_port};
    __builtin_memcpy(delivery.src, src, 16);
    tunnel_delivery = bpf_map_lookup_elem(&sluice_deliveries, &delivery) != 0;
  }
  int reason = sluice_inbound_reason(pod, src, dst, dst_port, tunnel_delivery);
  int verdict = SK_PASS;
  if (reason == SLUICE_CTR_INBOUND_CAPTURED) {
    struct sluice_listener_key key = {.netns_cookie = netns_cookie, .family = ctx->family};
    struct bpf_sock *sk = bpf_map_lookup_elem(&sluice_listeners, &key);
    if (!sk) {
      reason = SLUICE_CTR_INBOUND_NO_LISTENER;
      verdict = SK_DROP;
    } else {
      /* Exactly this listener, not another of its SO_REUSEPORT group: during an upgrade the
       * group holds the old tunnel's 15006 too, and the map already names the successor's. */
      long err = bpf_sk_assign(ctx, sk, BPF_SK_LOOKUP_F_NO_REUSEPORT);
      bpf_sk_release(sk);
      if (err) {
        reason = SLUICE_CTR_INBOUND_NO_LISTENER;
        verdict = SK_DROP;
      }
    }
  }
  count(netns_cookie, reason);
  trace(SLUICE_HOOK_SK_LOOKUP, reason, netns_cookie, src, src_port, dst, dst_port,
        ctx->family == AF_INET ? AF_INET : AF_INET6);
  return verdict;
}
