// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Sluice traffic capture: steer enrolled pods' TCP into the node tunnel without iptables.
 *
 *   cgroup/connect4, connect6  outbound: rewrite an enrolled pod's connect() to the tunnel's
 *                              outbound listener inside the pod (loopback:15001) and record the
 *                              original destination under the socket cookie
 *   sockops                    once the socket has its local port, re-key the record to
 *                              (netns cookie, local port) so the tunnel finds it from the accepted
 *                              socket's peer port; delete both records when the socket closes
 *   cgroup/getpeername4, 6     answer the original destination, so the rewrite stays invisible
 *   cgroup/getsockname4, 6     answer the pod's own address instead of the loopback one the
 *                              rewrite bound the socket to (the port stays the socket's own)
 *   (inbound, sk_lookup, is sluice_inbound.bpf.c: one instance per pod)
 *
 * Every decision is counted per pod (per-CPU) and, while someone reads it, traced to a ring
 * buffer. Configuration is in maps written by the agent; the tunnel's socket mark is load-time. */
#include "vmlinux.h"

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "sluice_decision.h"
#include "sluice_maps.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Sockets carrying this mark are the tunnel's own and are never redirected. */
const volatile __u32 tunnel_mark = 0;
/* ... and so are the tunnel's inbound delivery sockets (they connect from the client's address). */
const volatile __u32 delivery_mark = 0;

/* The outbound decision, shared by connect4 and connect6: a reason code, and the original
 * destination recorded when the reason is SLUICE_CTR_REDIRECTED. Returns -1 when the socket is
 * not subject to capture at all (pod not enrolled or capture off): not counted, not traced. */
static __always_inline int outbound_decision(struct bpf_sock_addr *ctx, __u64 netns_cookie,
                                             const __u8 *dst, __u16 port, __u16 family) {
  struct sluice_pod *pod = bpf_map_lookup_elem(&sluice_pods, &netns_cookie);
  if (!pod || !(pod->flags & SLUICE_POD_REDIRECT)) return -1;
  struct bpf_sock *sk = ctx->sk;
  int tunnels = sk && ((tunnel_mark && sk->mark == tunnel_mark) || (delivery_mark && sk->mark == delivery_mark));
  int reason = sluice_outbound_reason(pod, tunnels, dst, port);
  if (reason != SLUICE_CTR_REDIRECTED) return reason;
  if (cidr_excluded(netns_cookie, dst)) return SLUICE_CTR_EXCLUDED_CIDR;

  struct sluice_orig_dst orig = {.port = port, .family = family};
  copy16(orig.addr, dst);
  __u64 sock_cookie = bpf_get_socket_cookie(ctx);
  if (bpf_map_update_elem(&sluice_sock_dst, &sock_cookie, &orig, BPF_ANY) != 0)
    return SLUICE_CTR_RECORD_FAILED; /* without a record the tunnel could not route it */
  return SLUICE_CTR_REDIRECTED;
}

SEC("cgroup/connect4")
int sluice_connect4(struct bpf_sock_addr *ctx) {
  if (ctx->type != SOCK_STREAM) return 1;
  __u64 netns_cookie = bpf_get_netns_cookie(ctx);
  __u8 dst[16];
  set_v4_mapped(dst, ctx->user_ip4);
  __u16 port = bpf_ntohs((__u16)ctx->user_port);
  int reason = outbound_decision(ctx, netns_cookie, dst, port, AF_INET);
  if (reason < 0) return 1;
  if (reason == SLUICE_CTR_REDIRECTED) {
    ctx->user_ip4 = bpf_htonl(0x7f000001); /* 127.0.0.1 */
    ctx->user_port = bpf_htons(SLUICE_PORT_OUTBOUND);
  }
  count(netns_cookie, reason);
  trace(SLUICE_HOOK_CONNECT4, reason, netns_cookie, 0, 0, dst, port, AF_INET);
  return 1;
}

SEC("cgroup/connect6")
int sluice_connect6(struct bpf_sock_addr *ctx) {
  if (ctx->type != SOCK_STREAM) return 1;
  __u64 netns_cookie = bpf_get_netns_cookie(ctx);
  __u8 dst[16];
  __u32 ip6[4] = {ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3]};
  set_v6(dst, ip6);
  __u16 port = bpf_ntohs((__u16)ctx->user_port);
  int mapped = sluice_is_v4_mapped(dst);
  __u16 family = mapped ? AF_INET : AF_INET6;
  int reason = outbound_decision(ctx, netns_cookie, dst, port, family);
  if (reason < 0) return 1;
  if (reason == SLUICE_CTR_REDIRECTED) {
    /* A v4-mapped destination stays IPv4 on the wire: ::ffff:127.0.0.1. Otherwise ::1. */
    ctx->user_ip6[0] = 0;
    ctx->user_ip6[1] = 0;
    ctx->user_ip6[2] = mapped ? bpf_htonl(0x0000ffff) : 0;
    ctx->user_ip6[3] = mapped ? bpf_htonl(0x7f000001) : bpf_htonl(1);
    ctx->user_port = bpf_htons(SLUICE_PORT_OUTBOUND);
  }
  count(netns_cookie, reason);
  trace(SLUICE_HOOK_CONNECT6, reason, netns_cookie, 0, 0, dst, port, family);
  return 1;
}

SEC("sockops")
int sluice_sockops(struct bpf_sock_ops *ops) {
  __u64 sock_cookie;
  switch (ops->op) {
    case BPF_SOCK_OPS_TCP_CONNECT_CB: {
      sock_cookie = bpf_get_socket_cookie(ops);
      struct sluice_orig_dst *orig = bpf_map_lookup_elem(&sluice_sock_dst, &sock_cookie);
      if (!orig) return 1; /* not a redirected socket */
      struct sluice_conn_key key = {
          .netns_cookie = bpf_get_netns_cookie(ops),
          .port = (__u16)ops->local_port,
          /* On the wire a v4-mapped connection is IPv4, and that is what the tunnel sees. */
          .family = (ops->family == AF_INET6 && ops->remote_ip6[0] == 0 && ops->remote_ip6[1] == 0 &&
                     ops->remote_ip6[2] == bpf_htonl(0x0000ffff))
                        ? AF_INET
                        : (__u16)ops->family,
      };
      struct sluice_orig_dst copy = *orig;
      bpf_map_update_elem(&sluice_conn_dst, &key, &copy, BPF_ANY);
      bpf_sock_ops_cb_flags_set(ops, BPF_SOCK_OPS_STATE_CB_FLAG);
      return 1;
    }
    case BPF_SOCK_OPS_STATE_CB: {
      if (ops->args[1] != BPF_TCP_CLOSE_STATE) return 1;
      sock_cookie = bpf_get_socket_cookie(ops);
      bpf_map_delete_elem(&sluice_sock_dst, &sock_cookie);
      struct sluice_conn_key key = {.netns_cookie = bpf_get_netns_cookie(ops),
                                    .port = (__u16)ops->local_port};
      key.family = AF_INET;
      bpf_map_delete_elem(&sluice_conn_dst, &key);
      key.family = AF_INET6;
      bpf_map_delete_elem(&sluice_conn_dst, &key);
      return 1;
    }
    default:
      return 1;
  }
}

/* The original destination of a socket the connect hooks redirected (null: not redirected).
 * getpeername and getsockname answer for these sockets only. */
static __always_inline struct sluice_orig_dst *redirected_dst(struct bpf_sock_addr *ctx) {
  __u64 sock_cookie = bpf_get_socket_cookie(ctx);
  return bpf_map_lookup_elem(&sluice_sock_dst, &sock_cookie);
}

/* A 16-byte address (IPv6 or v4-mapped, network order) as the IPv6 answer of a sock_addr hook. */
static __always_inline void set_user_ip6(struct bpf_sock_addr *ctx, const __u8 *addr) {
  __u32 words[4];
  __builtin_memcpy(words, addr, 16);
  ctx->user_ip6[0] = words[0];
  ctx->user_ip6[1] = words[1];
  ctx->user_ip6[2] = words[2];
  ctx->user_ip6[3] = words[3];
}

SEC("cgroup/getpeername4")
int sluice_getpeername4(struct bpf_sock_addr *ctx) {
  struct sluice_orig_dst *orig = redirected_dst(ctx);
  if (!orig) return 1;
  __u32 ip4;
  __builtin_memcpy(&ip4, orig->addr + 12, 4);
  ctx->user_ip4 = ip4;
  ctx->user_port = bpf_htons(orig->port);
  return 1;
}

SEC("cgroup/getpeername6")
int sluice_getpeername6(struct bpf_sock_addr *ctx) {
  struct sluice_orig_dst *orig = redirected_dst(ctx);
  if (!orig) return 1;
  set_user_ip6(ctx, orig->addr);
  ctx->user_port = bpf_htons(orig->port);
  return 1;
}

/* The enrolled pod whose namespace the socket is in (null: none). */
static __always_inline struct sluice_pod *socket_pod(struct bpf_sock_addr *ctx) {
  __u64 netns_cookie = bpf_get_netns_cookie(ctx);
  return bpf_map_lookup_elem(&sluice_pods, &netns_cookie);
}

/* getsockname: the port is left as it is (the socket's own). The index is checked against the
 * array's size again so the verifier sees the access is in bounds. */
SEC("cgroup/getsockname4")
int sluice_getsockname4(struct bpf_sock_addr *ctx) {
  struct sluice_pod *pod = redirected_dst(ctx) ? socket_pod(ctx) : 0;
  if (!pod) return 1;
  int i = sluice_local_addr_index(pod, 1);
  if (i < 0 || i >= SLUICE_MAX_POD_ADDRS) return 1;
  __u32 ip4;
  __builtin_memcpy(&ip4, pod->addrs[i] + 12, 4);
  ctx->user_ip4 = ip4;
  return 1;
}

SEC("cgroup/getsockname6")
int sluice_getsockname6(struct bpf_sock_addr *ctx) {
  struct sluice_orig_dst *orig = redirected_dst(ctx);
  struct sluice_pod *pod = orig ? socket_pod(ctx) : 0;
  if (!pod) return 1;
  /* A v4-mapped destination travels as IPv4: the socket is bound to ::ffff:127.0.0.1. */
  int i = sluice_local_addr_index(pod, sluice_is_v4_mapped(orig->addr));
  if (i < 0 || i >= SLUICE_MAX_POD_ADDRS) return 1;
  set_user_ip6(ctx, pod->addrs[i]);
  return 1;
}
