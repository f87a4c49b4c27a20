#include "proxy/pod_socket_factory.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/socket.h>

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
  // bind() picks the port now, so the delivery can be registered before its SYN leaves. A port
  // equal to the client's own would make the SYN look like the client's captured connection
  // (same 4-tuple at the app's port): another one is taken.
  for (int attempt = 0; attempt < 3; ++attempt) {
    SLUICE_TRY_ASSIGN(fd, socketIn(pod, target.family(), deliveryMark_));
    int one = 1;
    bool v4 = target.family() == AF_INET;
    if (::setsockopt(fd.get(), v4 ? SOL_IP : SOL_IPV6, v4 ? IP_TRANSPARENT : IPV6_TRANSPARENT, &one, sizeof(one)) != 0) {
      return failErrno("IP_TRANSPARENT");
    }
    if (::bind(fd.get(), source->sockaddrPtr(), source->length()) != 0) return failErrno("bind to the client's " + source->ip());
    SocketAddress bound = localAddress(fd.get());
    if (bound.port() == client.port()) continue;
    SLUICE_TRY_ASSIGN(registration, deliveries_->add(pod.netnsCookie, bound, target.port()));
    return Delivery{std::move(fd), std::move(registration)};
  }
  return fail("no port for a delivery from " + source->ip());
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
