/* Types shared by the capture BPF programs (sluice_capture.bpf.c) and the C++ agent: map keys,
 * values, counter reasons and trace events. One definition for both sides, so a layout change
 * cannot drift between them. Plain C, fixed-width fields, explicit padding.
 *
 * Maps are pinned under <pin dir>/v1/ (CaptureDatapath), and an agent refuses to adopt a pinned
 * map whose type, key, value or size differs (checkCompatible), so a layout change never reuses
 * an older map by accident: change the layout and the version folder together. */
#ifndef SLUICE_CAPTURE_H
#define SLUICE_CAPTURE_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Well-known ports, as in Istio ambient. */
#define SLUICE_PORT_OUTBOUND 15001
#define SLUICE_PORT_INBOUND_PLAINTEXT 15006
#define SLUICE_PORT_HBONE 15008

/* SO_MARK of the tunnel's own sockets by default (Istio's in-pod ztunnel uses the same 0x539):
 * capture never redirects a socket that carries it. */
#define SLUICE_TUNNEL_MARK_DEFAULT 0x539

/* Inbound delivery with the client's address (agent/capture/transparent_delivery.h): the SO_MARK
 * of the tunnel's sockets that connect to the app from the client's address, the routing table
 * in the pod that sends the app's replies to such sockets back through loopback, and the
 * priority of the rule choosing that table. Capture never redirects this mark either. */
#define SLUICE_DELIVERY_MARK_DEFAULT 0x53a
#define SLUICE_DELIVERY_ROUTE_TABLE 15006
#define SLUICE_DELIVERY_RULE_PRIORITY 32700
/* The loopback device's index: 1 in every network namespace (the kernel's LOOPBACK_IFINDEX). */
#define SLUICE_LOOPBACK_IFINDEX 1

/* Limits of per-pod configuration held in the kernel. */
#define SLUICE_MAX_POD_ADDRS 4
#define SLUICE_MAX_EXCLUDED_PORTS 8

/* Pod flags. */
#define SLUICE_POD_REDIRECT 0x1u /* capture is on (set only after the tunnel acknowledged) */

/* One pod's capture configuration; key: the pod's network namespace cookie. Addresses are
 * IPv6 or IPv4-mapped IPv6 (::ffff:a.b.c.d), network byte order. Ports in host order, 0 = none. */
struct sluice_pod {
  __u32 flags;
  __u32 addr_count;
  __u8 addrs[SLUICE_MAX_POD_ADDRS][16];
  __u16 exclude_outbound_ports[SLUICE_MAX_EXCLUDED_PORTS];
  __u16 exclude_inbound_ports[SLUICE_MAX_EXCLUDED_PORTS];
};

/* Excluded outbound CIDRs, per pod: an LPM trie key whose first 64 bits are the netns cookie
 * (always matched in full), then the address. prefixlen = 64 + the CIDR's bits (IPv4 CIDRs are
 * stored IPv4-mapped: 96 + bits). */
struct sluice_cidr_key {
  __u32 prefixlen;
  __u64 netns_cookie;
  __u8 addr[16];
} __attribute__((packed));

/* An original destination, IPv6 or IPv4-mapped; port in host order; family AF_INET/AF_INET6 of
 * the address as the app gave it (AF_INET for a v4-mapped destination). */
struct sluice_orig_dst {
  __u8 addr[16];
  __u16 port;
  __u16 family;
  __u32 _pad;
};

/* Key by which the tunnel finds the original destination of a connection it accepted on a pod's
 * outbound listener: the pod's netns cookie and the app socket's local port, which the tunnel
 * sees as its peer port. family is that of the connection on the wire (AF_INET for v4-mapped). */
struct sluice_conn_key {
  __u64 netns_cookie;
  __u16 port;
  __u16 family;
  __u32 _pad;
};

/* A delivery the tunnel is making to a pod's app from its client's address, registered by the
 * tunnel (agent/capture/delivery_table.h) between bind() and connect() and removed just before
 * its socket closes, so the pod's sk_lookup program lets exactly that connection through: it looks like
 * a client's, and no mark is in sk_lookup's view. Its socket is bound to the pod's "lo", so it
 * arrives there (SLUICE_LOOPBACK_IFINDEX); a packet from outside with a registered source (a
 * registration a dead tunnel left, or a guess) arrives on the pod's veth and is not one.
 * Address IPv6 or IPv4-mapped. */
struct sluice_delivery_key {
  __u64 netns_cookie;
  __u8 src[16];
  __u16 src_port; /* host order */
  __u16 dst_port; /* host order */
  __u32 _pad;
};

/* Key of the tunnel's inbound (15006) listener of a pod in the sk_lookup socket map. */
struct sluice_listener_key {
  __u64 netns_cookie;
  __u32 family;
  __u32 _pad;
};

/* Per-pod counters: indexes into struct sluice_counters. The agent sums them over CPUs.
 * One list, X(id, "name", "meaning"), expanded into the enum here and into the names the agent,
 * sluicectl and the metrics show (agent/daemon/explain.cc), so the two sides cannot drift. */
#define SLUICE_COUNTERS(X)                                                                        \
  X(SLUICE_CTR_REDIRECTED, "redirected", "outbound connect rewritten to 15001")                    \
  X(SLUICE_CTR_BYPASS_MARK, "bypass_mark", "tunnel's own socket (carries the tunnel mark)")        \
  X(SLUICE_CTR_EXCLUDED_LOOPBACK, "excluded_loopback", "destination is loopback")                  \
  X(SLUICE_CTR_EXCLUDED_SELF, "excluded_self", "destination is one of the pod's own addresses")    \
  X(SLUICE_CTR_EXCLUDED_PORT, "excluded_port", "destination port excluded for this pod")           \
  X(SLUICE_CTR_EXCLUDED_CIDR, "excluded_cidr", "destination in an excluded CIDR")                  \
  X(SLUICE_CTR_RECORD_FAILED, "record_failed", "original destination not recorded: not redirected") \
  X(SLUICE_CTR_INBOUND_CAPTURED, "inbound_captured", "inbound connection steered to 15006")        \
  X(SLUICE_CTR_INBOUND_HBONE, "inbound_hbone", "inbound to 15008: left to the HBONE listener")     \
  X(SLUICE_CTR_INBOUND_LOCAL_SOURCE, "inbound_local_source", "inbound from the pod itself")        \
  X(SLUICE_CTR_INBOUND_EXCLUDED_PORT, "inbound_excluded_port", "inbound port excluded for this pod") \
  X(SLUICE_CTR_INBOUND_NO_LISTENER, "inbound_no_listener", "enrolled, no tunnel listener: dropped (fail closed)")

enum sluice_counter {
#define SLUICE_COUNTER_ENUM(id, name, meaning) id,
  SLUICE_COUNTERS(SLUICE_COUNTER_ENUM)
#undef SLUICE_COUNTER_ENUM
  SLUICE_CTR_MAX
};

struct sluice_counters {
  __u64 value[SLUICE_CTR_MAX];
};

/* Global settings, one entry (index 0), written by the agent. */
struct sluice_settings {
  __u32 trace_enabled; /* nonzero while someone reads the trace ring */
  __u32 _pad;
};

enum sluice_hook {
  SLUICE_HOOK_CONNECT4 = 1,
  SLUICE_HOOK_CONNECT6 = 2,
  SLUICE_HOOK_SK_LOOKUP = 3,
};

/* One redirect decision, in the trace ring buffer. */
struct sluice_trace_event {
  __u64 timestamp_ns; /* CLOCK_MONOTONIC */
  __u64 netns_cookie;
  __u32 pid;
  __u16 hook;    /* enum sluice_hook */
  __u16 reason;  /* enum sluice_counter: the decision taken */
  __u8 src[16];  /* sk_lookup: the peer; connect: unset */
  __u8 dst[16];  /* the destination as the app or the peer gave it */
  __u16 src_port;
  __u16 dst_port;
  __u16 family;
  __u16 _pad;
  char comm[16];
};

#endif /* SLUICE_CAPTURE_H */
