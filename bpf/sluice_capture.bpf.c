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
 *   sk_lookup                  inbound: steer TCP from outside the pod to any port but 15008 into
 *                              the tunnel's 15006 listener of that pod
 *
 * Every decision is counted per pod (per-CPU) and, while someone reads it, traced to a ring
 * buffer. Configuration is in maps written by the agent; the tunnel's socket mark is load-time. */
#include "vmlinux.h"

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "sluice_capture.h"
#include "sluice_decision.h"

#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define BPF_TCP_CLOSE_STATE 7

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Sockets carrying this mark are the tunnel's own and are never redirected. */
const volatile __u32 tunnel_mark = 0;

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);
  __type(key, __u64); /* netns cookie */
  __type(value, struct sluice_pod);
} sluice_pods SEC(".maps");

/* sk_lookup has no netns cookie helper: it finds the pod by the destination address. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 16384);
  __type(key, __u8[16]);
  __type(value, __u64); /* netns cookie */
} sluice_pod_addrs SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, 16384);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct sluice_cidr_key);
  __type(value, __u8);
} sluice_excl_cidrs SEC(".maps");

/* Original destination by app socket cookie: written at connect, read by getpeername and
 * sockops, deleted at close. LRU so that a socket that never reaches close (connect failed before
 * the SYN) cannot exhaust the map. */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, __u64);
  __type(value, struct sluice_orig_dst);
} sluice_sock_dst SEC(".maps");

/* Original destination by (netns cookie, app local port): what the tunnel reads. */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, struct sluice_conn_key);
  __type(value, struct sluice_orig_dst);
} sluice_conn_dst SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_SOCKHASH);
  __uint(max_entries, 8192);
  __type(key, struct sluice_listener_key);
  __type(value, __u64);
} sluice_listeners SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
  __uint(max_entries, 4096);
  __type(key, __u64); /* netns cookie */
  __type(value, struct sluice_counters);
} sluice_counters SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct sluice_settings);
} sluice_settings SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 256 * 1024);
} sluice_trace SEC(".maps");

static __always_inline void count(__u64 netns_cookie, __u32 reason) {
  struct sluice_counters *c = bpf_map_lookup_elem(&sluice_counters, &netns_cookie);
  if (c && reason < SLUICE_CTR_MAX) c->value[reason]++; /* per-CPU: no atomics needed */
}

static __always_inline int tracing(void) {
  __u32 zero = 0;
  struct sluice_settings *s = bpf_map_lookup_elem(&sluice_settings, &zero);
  return s && s->trace_enabled;
}

static __always_inline void copy16(__u8 *dst, const __u8 *src) {
  __builtin_memcpy(dst, src, 16);
}

static __always_inline void set_v4_mapped(__u8 *out, __u32 ip4_be) {
  __builtin_memset(out, 0, 10);
  out[10] = 0xff;
  out[11] = 0xff;
  __builtin_memcpy(out + 12, &ip4_be, 4);
}

static __always_inline void set_v6(__u8 *out, const __u32 *ip6_be) {
  __u32 words[4] = {ip6_be[0], ip6_be[1], ip6_be[2], ip6_be[3]};
  __builtin_memcpy(out, words, 16);
}






static __always_inline int cidr_excluded(__u64 netns_cookie, const __u8 *a) {
  struct sluice_cidr_key key = {.prefixlen = 64 + 128, .netns_cookie = netns_cookie};
  copy16(key.addr, a);
  return bpf_map_lookup_elem(&sluice_excl_cidrs, &key) != 0;
}

static __always_inline void trace(__u16 hook, __u16 reason, __u64 netns_cookie, const __u8 *src,
                                  __u16 src_port, const __u8 *dst, __u16 dst_port, __u16 family) {
  if (!tracing()) return;
  struct sluice_trace_event *e = bpf_ringbuf_reserve(&sluice_trace, sizeof(*e), 0);
  if (!e) return;
  __builtin_memset(e, 0, sizeof(*e));
  e->timestamp_ns = bpf_ktime_get_ns();
  e->netns_cookie = netns_cookie;
  e->pid = bpf_get_current_pid_tgid() >> 32;
  e->hook = hook;
  e->reason = reason;
  if (src) copy16(e->src, src);
  copy16(e->dst, dst);
  e->src_port = src_port;
  e->dst_port = dst_port;
  e->family = family;
  bpf_get_current_comm(e->comm, sizeof(e->comm));
  bpf_ringbuf_submit(e, 0);
}

/* The outbound decision, shared by connect4 and connect6: a reason code, and the original
 * destination recorded when the reason is SLUICE_CTR_REDIRECTED. Returns -1 when the socket is
 * not subject to capture at all (pod not enrolled or capture off): not counted, not traced. */
static __always_inline int outbound_decision(struct bpf_sock_addr *ctx, __u64 netns_cookie,
                                             const __u8 *dst, __u16 port, __u16 family) {
  struct sluice_pod *pod = bpf_map_lookup_elem(&sluice_pods, &netns_cookie);
  if (!pod || !(pod->flags & SLUICE_POD_REDIRECT)) return -1;
  struct bpf_sock *sk = ctx->sk;
  int reason = sluice_outbound_reason(pod, sk && tunnel_mark && sk->mark == tunnel_mark, dst, port);
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

SEC("cgroup/getpeername4")
int sluice_getpeername4(struct bpf_sock_addr *ctx) {
  __u64 sock_cookie = bpf_get_socket_cookie(ctx);
  struct sluice_orig_dst *orig = bpf_map_lookup_elem(&sluice_sock_dst, &sock_cookie);
  if (!orig) return 1;
  __u32 ip4;
  __builtin_memcpy(&ip4, orig->addr + 12, 4);
  ctx->user_ip4 = ip4;
  ctx->user_port = bpf_htons(orig->port);
  return 1;
}

SEC("cgroup/getpeername6")
int sluice_getpeername6(struct bpf_sock_addr *ctx) {
  __u64 sock_cookie = bpf_get_socket_cookie(ctx);
  struct sluice_orig_dst *orig = bpf_map_lookup_elem(&sluice_sock_dst, &sock_cookie);
  if (!orig) return 1;
  __u32 words[4];
  __builtin_memcpy(words, orig->addr, 16);
  ctx->user_ip6[0] = words[0];
  ctx->user_ip6[1] = words[1];
  ctx->user_ip6[2] = words[2];
  ctx->user_ip6[3] = words[3];
  ctx->user_port = bpf_htons(orig->port);
  return 1;
}

SEC("sk_lookup")
int sluice_sk_lookup(struct bpf_sk_lookup *ctx) {
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
  __u64 *cookie = bpf_map_lookup_elem(&sluice_pod_addrs, dst);
  if (!cookie) return SK_PASS; /* not addressed to an enrolled pod (e.g. loopback) */
  __u64 netns_cookie = *cookie;
  struct sluice_pod *pod = bpf_map_lookup_elem(&sluice_pods, &netns_cookie);
  if (!pod || !(pod->flags & SLUICE_POD_REDIRECT)) return SK_PASS;

  __u16 dst_port = (__u16)ctx->local_port;
  __u16 src_port = bpf_ntohs((__u16)ctx->remote_port);
  int reason = sluice_inbound_reason(pod, src, dst_port);
  int verdict = SK_PASS;
  if (reason == SLUICE_CTR_INBOUND_CAPTURED) {
    struct sluice_listener_key key = {.netns_cookie = netns_cookie, .family = ctx->family};
    struct bpf_sock *sk = bpf_map_lookup_elem(&sluice_listeners, &key);
    if (!sk) {
      /* Enrolled but the tunnel has no listener (restarting): refuse rather than let
       * plaintext reach the app around policy. The client's SYN is retried. */
      reason = SLUICE_CTR_INBOUND_NO_LISTENER;
      verdict = SK_DROP;
    } else {
      long err = bpf_sk_assign(ctx, sk, 0);
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
