#include "proxy/pod_socket_factory.h"

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

Status setNoDelay(int fd) {
  int one = 1;
  if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) return failErrno("TCP_NODELAY");
  return {};
}

Result<UniqueFd> NetnsSocketFactory::upstream(const PodRuntime& pod, int family) const {
  int host = hostNetns();
  if (host < 0) return failErrno("open this thread's network namespace");
  // setns() changes only this thread; the socket stays in the pod's namespace for its life.
  if (::setns(pod.netns.get(), CLONE_NEWNET) != 0) return failErrno("setns into " + pod.key());
  UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int saved = errno;
  SLUICE_CHECK(::setns(host, CLONE_NEWNET) == 0, "worker cannot return to the host network namespace");
  if (!fd) return failErrno("socket in " + pod.key(), saved);
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_MARK, &mark_, sizeof(mark_)) != 0) return failErrno("SO_MARK");
  SLUICE_TRY(setNoDelay(fd.get()), "upstream socket");
  return fd;
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
