// Inbound delivery with the client's address, the pod's side. The tunnel connects to the app
// from the client's own IP (IP_TRANSPARENT, bound to an address the pod does not have), so the
// app's getpeername(), logs and allowlists see the real client. Two things in the pod's network
// namespace make the app's replies come back to the tunnel instead of leaving towards that
// address (ztunnel's in-pod mode does the same with iptables CONNMARK; this needs no iptables):
//
//   - net.ipv4.tcp_fwmark_accept = 1: a connection accepted by a listener without a mark takes
//     the mark of the SYN that opened it. The tunnel's delivery SYN carries the delivery mark
//     (SO_MARK over loopback keeps it), so the app's socket for it carries that mark; traffic
//     from outside arrives unmarked (a veth scrubs marks) and is not affected.
//   - net.ipv4/ipv6.fwmark_reflect = 1: the kernel's own replies (a reset from a port nobody
//     listens on, an ICMP error) take the mark of the packet they answer, so a delivery to a
//     closed port is refused at once instead of timing out; unmarked traffic stays unmarked.
//   - a rule "fwmark <delivery mark> lookup <table>" (IPv4 and IPv6) and in that table a local
//     default route on loopback: packets with the mark are delivered locally, where the tunnel's
//     transparent socket takes them.
//
// The capture program lets the delivery in: it arrives on the pod's loopback device, which only
// the pod's own sockets can send on (sluice_inbound_reason). Idempotent: run at enrollment and
// again for every pod an agent adopts after a restart. Left in place when a pod leaves (its
// namespace goes with it; nothing else carries the mark).
#pragma once

#include <cstdint>

#include "sluice/common/error.h"

namespace sluice::agent {

struct TransparentDelivery {
  uint32_t mark = 0;
  uint32_t table = 0;
  uint32_t rulePriority = 0;
};

// Sets the pod's namespace up as above (a short-lived thread enters it; the caller's thread is
// never moved). A namespace without IPv6 gets the IPv4 half only.
Status enableTransparentDelivery(int podNetnsFd, const TransparentDelivery& delivery);

}  // namespace sluice::agent
