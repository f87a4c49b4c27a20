#include "sluice/common/netns.h"

#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <string>
#include <thread>

#include "sluice/common/socket_address.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace sluice {

Result<UniqueFd> socketInNetns(int netnsFd, int domain, int type, int protocol) {
  Result<UniqueFd> result = fail("socketInNetns: not run");
  std::thread worker([&] {
    if (::setns(netnsFd, CLONE_NEWNET) != 0) {
      result = failErrno("setns into network namespace");
      return;
    }
    int fd = ::socket(domain, type | SOCK_CLOEXEC, protocol);
    if (fd < 0) {
      result = failErrno("socket in network namespace");
      return;
    }
    result = UniqueFd(fd);
  });
  worker.join();
  return result;
}

Result<UniqueFd> listenInNetns(int netnsFd, const std::string& address, const ListenOptions& options) {
  auto addr = SocketAddress::parse(address);
  if (!addr) return fail(std::move(addr.error()));
  auto fd = socketInNetns(netnsFd, addr->family(), SOCK_STREAM);
  if (!fd) return fd;
  int one = 1, v6only = options.dualStack ? 0 : 1;
  ::setsockopt(fd->get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (options.reusePort && ::setsockopt(fd->get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
    return failErrno("SO_REUSEPORT");
  }
  if (addr->family() == AF_INET6) ::setsockopt(fd->get(), IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
  if (options.mark != 0 &&
      ::setsockopt(fd->get(), SOL_SOCKET, SO_MARK, &options.mark, sizeof(options.mark)) != 0) {
    return failErrno("SO_MARK");
  }
  if (::bind(fd->get(), addr->sockaddrPtr(), addr->length()) != 0) return failErrno("bind " + address);
  if (::listen(fd->get(), options.backlog) != 0) return failErrno("listen " + address);
  // After listen(): only then has the socket joined its port's group (a program attached
  // before would stay with a group of its own that the kernel drops on joining).
  if (options.reusePort && options.reuseportProgram >= 0 &&
      ::setsockopt(fd->get(), SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &options.reuseportProgram,
                   sizeof(options.reuseportProgram)) != 0) {
    return failErrno("SO_ATTACH_REUSEPORT_EBPF on " + address);
  }
  return fd;
}

Result<uint64_t> netnsCookie(int netnsFd) {
  auto sock = socketInNetns(netnsFd, AF_INET, SOCK_DGRAM);
  if (!sock) return fail(std::move(sock.error()).context("netns cookie"));
  uint64_t cookie = 0;
  socklen_t length = sizeof(cookie);
  if (::getsockopt(sock->get(), SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &length) != 0) {
    return failErrno("getsockopt(SO_NETNS_COOKIE)");
  }
  return cookie;
}

Result<UniqueFd> openNetns(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return failErrno("open network namespace " + path);
  int type = ::ioctl(fd.get(), NS_GET_NSTYPE);
  if (type != CLONE_NEWNET) return fail(path + " is not a network namespace");
  return fd;
}

}  // namespace sluice
