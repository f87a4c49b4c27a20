/* The maps both capture objects use, and their small helpers (BPF side only). Included by
 * sluice_capture.bpf.c (connect, sockops, getpeername) and sluice_inbound.bpf.c (sk_lookup, one
 * instance per pod); the agent loads the first, pins its maps, and makes every per-pod
 * instance reuse them (bpf_map__reuse_fd), so there is one set of maps per node. */
#ifndef SLUICE_MAPS_BPF_H
#define SLUICE_MAPS_BPF_H

#include "sluice_capture.h"

#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define BPF_TCP_CLOSE_STATE 7

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);
  __type(key, __u64); /* netns cookie */
  __type(value, struct sluice_pod);
} sluice_pods SEC(".maps");

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

/* The tunnel's deliveries in progress (struct sluice_delivery_key): written by the tunnel, read
 * by the pods' sk_lookup programs. LRU: a tunnel that dies cannot leave it full. */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, struct sluice_delivery_key);
  __type(value, __u8);
} sluice_deliveries SEC(".maps");

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

#endif /* SLUICE_MAPS_BPF_H */
