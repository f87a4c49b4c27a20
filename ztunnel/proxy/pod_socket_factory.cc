#include "proxy/pod_socket_factory.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <numeric>

#include "sluice/common/assert.h"
#include "sluice/common/netns.h"
#include "sluice/common/socket_address.h"

namespace sluice::ztunnel {
namespace {

// The namespace this thread started in, to come back to after making a pod's socket.
int hostNetns() {
  thread_local UniqueFd host(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  return host.get();
}

}  // namespace

namespace {

// The IPv4 address `a` holds, as text, when it is IPv4 or IPv4-mapped IPv6; "" otherwise.
std::string ipv4Of(const SocketAddress& a) {
  if (a.family() == AF_INET) return a.ip();
  if (a.family() != AF_INET6) return "";
  auto v6 = reinterpret_cast<const sockaddr_in6*>(a.sockaddrPtr());
  if (!IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) return "";
  char text[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &v6->sin6_addr.s6_addr[12], text, sizeof(text));
  return text;
}

}  // namespace

uint16_t portAt(uint32_t cursor, PortRange range) {
  if (range.last < range.first) std::swap(range.first, range.last);
  // Only ports of the parity opposite to the range's first: a Linux client's connect() takes
  // ports of the first's parity (until half its range is in use), and the kernel's own bind(0)
  // takes the others for the same reason. A delivery on a port a live client connection of the
  // same address uses would meet that connection's 4-tuple at the app's port: its SYN would be
  // answered by the connection (a challenge ACK), stall, and could reset it.
  uint64_t count = (uint64_t(range.last) - range.first + 1) / 2;
  if (count == 0) return range.first;  // a one-port range has no other parity
  if (count == 1) return range.first + 1;  // (and no stride but 1, which the search below skips)
  // A stride coprime with the count visits every such port once per `count` steps; a large one
  // scatters consecutive deliveries, so a burst of long-lived connections does not leave a
  // block of taken ports that later deliveries would have to walk through one by one.
  uint64_t stride = 40503 % count;
  while (stride == 0 || std::gcd(stride, count) != 1) stride = (stride + 1) % count;  // ends: 1 is coprime
  return static_cast<uint16_t>(range.first + 1 + 2 * ((uint64_t(cursor) % count) * stride % count));
}

std::optional<PortRange> parsePortRange(std::string_view text) {
  unsigned first = 0, last = 0;
  char tail = 0;
  std::string copy(text);
  int n = std::sscanf(copy.c_str(), "%u %u %c", &first, &last, &tail);
  if (n != 2 || first == 0 || first > last || last > 65535) return std::nullopt;
  return PortRange{static_cast<uint16_t>(first), static_cast<uint16_t>(last)};
}

std::optional<SocketAddress> transparentSource(const SocketAddress& client, const SocketAddress& target) {
  std::string clientV4 = ipv4Of(client), targetV4 = ipv4Of(target);
  Result<SocketAddress> out = fail("none");
  if (!clientV4.empty() && !targetV4.empty()) {
    // In the target's notation: a dual-stack socket speaks IPv4 as ::ffff:a.b.c.d.
    out = SocketAddress::fromIp(target.family() == AF_INET ? clientV4 : "::ffff:" + clientV4, 0);
  } else if (clientV4.empty() && targetV4.empty() && client.family() == AF_INET6 && target.family() == AF_INET6 &&
             !IN6_IS_ADDR_LINKLOCAL(&reinterpret_cast<const sockaddr_in6*>(client.sockaddrPtr())->sin6_addr)) {
    // (A link-local client's address means nothing without its interface: not bound to.)
    out = SocketAddress::fromIp(client.ip(), 0);
  }
  if (!out || out->ip() == "0.0.0.0" || out->ip() == "::" || out->ip() == "::ffff:0.0.0.0") return std::nullopt;
  return *out;
}

Status setNoDelay(int fd) {
  int one = 1;
  if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) return failErrno("TCP_NODELAY");
  return {};
}

Result<UniqueFd> NetnsSocketFactory::socketIn(const PodRuntime& pod, int family, uint32_t mark) const {
  int host = hostNetns();
  if (host < 0) return failErrno("open this thread's network namespace");
  // setns() changes only this thread; the socket stays in the pod's namespace for its life.
  if (::setns(pod.netns.get(), CLONE_NEWNET) != 0) return failErrno("setns into " + pod.key());
  UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int saved = errno;
  SLUICE_CHECK(::setns(host, CLONE_NEWNET) == 0, "worker cannot return to the host network namespace");
  if (!fd) return failErrno("socket in " + pod.key(), saved);
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) != 0) return failErrno("SO_MARK");
  SLUICE_TRY(setNoDelay(fd.get()), "upstream socket");
  return fd;
}

Result<UniqueFd> NetnsSocketFactory::upstream(const PodRuntime& pod, int family) const { return socketIn(pod, family, mark_); }

Result<PodSocketFactory::Delivery> NetnsSocketFactory::delivery(const PodRuntime& pod, const SocketAddress& target,
                                                                const SocketAddress& client) const {
  auto source = deliveryMark_ != 0 && deliveries_ ? transparentSource(client, target) : std::nullopt;
  if (!source) {
    SLUICE_TRY_ASSIGN(fd, upstream(pod, target.family()));
    return Delivery{std::move(fd), nullptr};
  }
  // The port is chosen here, not by connect(), so the delivery is registered before its SYN
  // leaves. Not by bind(port 0) either: the kernel scans for a port no socket holds, and under
  // a high connection rate from one client nearly all of them are in TIME_WAIT (the delivery
  // relays the client's FIN, so it closes first): the scan then took most of the tunnel's CPU
  // and ran out of ports at ~470 connections a second. So:
  //   - the socket is bound to "lo", where the SYN goes anyway (the pod's routing sends the
  //     app's answers to the client's address back through lo): nothing crosses a network, so
  //     no old segment can arrive late, which is what TIME_WAIT guards against. A port bound
  //     explicitly reuses a TIME_WAIT 4-tuple at connect (tcp_twsk_unique, timestamps on);
  //   - SO_REUSEADDR lets bind() share a port with TIME_WAIT sockets (and with an app's
  //     listener that has it too); a live connection with the same 4-tuple is told by its
  //     registration (add fails with EEXIST) and the next port is taken; one that was closed
  //     but is not finished (FIN_WAIT, the app has not closed its side) makes the connect
  //     fail with EADDRNOTAVAIL, and the endpoint takes another delivery (redelivery);
  //   - ports follow one cursor over the ephemeral range (portAt), not the client's own port
  //     (that SYN would look like the client's captured connection); a retry jumps far in
  //     cursor order (below).
  static const PortRange range = [] {
    std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return parsePortRange(text).value_or(PortRange{});
  }();
  static std::atomic<uint32_t> cursor{static_cast<uint32_t>(::getpid()) * 2654435761u};
  constexpr int kAttempts = 64;
  int inUse = 0, registered = 0, own = 0;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    // A retry jumps far in cursor order: long-lived connections opened in a burst hold a run
    // of consecutive cursor positions, which every later round meets again.
    uint16_t port = portAt(cursor.fetch_add(1, std::memory_order_relaxed) + uint32_t(attempt) * 7919u, range);
    if (port == client.port()) {
      ++own;
      continue;
    }
    SLUICE_TRY_ASSIGN(fd, socketIn(pod, target.family(), deliveryMark_));
    int one = 1;
    bool v4 = target.family() == AF_INET;
    if (::setsockopt(fd.get(), v4 ? SOL_IP : SOL_IPV6, v4 ? IP_TRANSPARENT : IPV6_TRANSPARENT, &one, sizeof(one)) != 0) {
      return failErrno("IP_TRANSPARENT");
    }
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_BINDTODEVICE, "lo", 3) != 0) return failErrno("SO_BINDTODEVICE lo");
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) return failErrno("SO_REUSEADDR");
    SLUICE_TRY_ASSIGN(bound, SocketAddress::fromIp(source->ip(), port));
    if (::bind(fd.get(), bound.sockaddrPtr(), bound.length()) != 0) {
      if (errno == EADDRINUSE) {  // e.g. an app's listener without SO_REUSEADDR
        ++inUse;
        continue;
      }
      return failErrno("bind to the client's " + source->ip());
    }
    auto registration = deliveries_->add(pod.netnsCookie, bound, target.port());
    if (!registration && registration.error().code() == EEXIST) {
      ++registered;
      continue;
    }
    if (!registration) return fail(std::move(registration.error()));
    return Delivery{std::move(fd), std::move(*registration)};
  }
  return fail(fmt::format("no port for a delivery from {} in {} tries ({} in use, {} registered, {} the client's)", source->ip(),
                          kAttempts, inUse, registered, own));
}

std::function<Result<SocketEndpoint::Rebound>()> redelivery(const PodSocketFactory& sockets, std::shared_ptr<PodRuntime> pod,
                                                            SocketAddress target, SocketAddress client) {
  return [&sockets, pod = std::move(pod), target = std::move(target), client = std::move(client)]() -> Result<SocketEndpoint::Rebound> {
    SLUICE_TRY_ASSIGN(again, sockets.delivery(*pod, target, client));
    return SocketEndpoint::Rebound{std::move(again.fd), std::move(again.registration)};
  };
}

Result<UniqueFd> NetnsSocketFactory::listener(const PodRuntime& pod, const std::string& address, bool dualStack) const {
  return listenInNetns(pod.netns.get(), address, {.mark = mark_, .dualStack = dualStack, .reusePort = true, .reuseportProgram = reuseportProgram_});
}

Result<UniqueFd> LocalSocketFactory::upstream(const PodRuntime&, int family) const {
  UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return failErrno("socket");
  SLUICE_TRY(setNoDelay(fd.get()), "upstream socket");
  return fd;
}

Result<UniqueFd> LocalSocketFactory::listener(const PodRuntime&, const std::string& address, bool dualStack) const {
  auto addr = SocketAddress::parse(address);
  if (!addr) return fail(std::move(addr.error()));
  UniqueFd fd(::socket(addr->family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return failErrno("socket");
  int one = 1, v6only = dualStack ? 0 : 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (addr->family() == AF_INET6) ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
  if (::bind(fd.get(), addr->sockaddrPtr(), addr->length()) != 0) return failErrno("bind " + address);
  if (::listen(fd.get(), 1024) != 0) return failErrno("listen " + address);
  return fd;
}

}  // namespace sluice::ztunnel
