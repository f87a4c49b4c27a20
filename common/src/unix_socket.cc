#include "sluice/common/unix_socket.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

namespace sluice {
namespace {

Result<sockaddr_un> unixAddress(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return fail("unix socket path '" + path + "' is empty or longer than " +
                std::to_string(sizeof(addr.sun_path) - 1) + " bytes");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

Status waitReadable(int fd, std::chrono::milliseconds timeout) {
  pollfd pfd{fd, POLLIN, 0};
  for (;;) {
    int ready = ::poll(&pfd, 1, timeout.count() < 0 ? -1 : static_cast<int>(timeout.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return failErrno("poll");
    if (ready == 0) return failErrno("no message within the timeout", ETIMEDOUT);
    return {};
  }
}

}  // namespace

Result<UniqueFd> listenUnix(const std::string& path, int type, mode_t mode) {
  auto addr = unixAddress(path);
  if (!addr) return fail(std::move(addr.error()));
  UniqueFd fd(::socket(AF_UNIX, type | SOCK_CLOEXEC, 0));
  if (!fd) return failErrno("socket");
  ::unlink(path.c_str());  // a stale socket file from a previous run
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&*addr), sizeof(*addr)) != 0) return failErrno("bind " + path);
  if (::chmod(path.c_str(), mode) != 0) return failErrno("chmod " + path);
  if (::listen(fd.get(), 128) != 0) return failErrno("listen " + path);
  return fd;
}

Result<UniqueFd> connectUnix(const std::string& path, int type) {
  auto addr = unixAddress(path);
  if (!addr) return fail(std::move(addr.error()));
  UniqueFd fd(::socket(AF_UNIX, type | SOCK_CLOEXEC, 0));
  if (!fd) return failErrno("socket");
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&*addr), sizeof(*addr)) != 0) {
    return failErrno("connect " + path);
  }
  return fd;
}

Status sendMessage(int socket, std::string_view bytes, std::span<const int> fds) {
  iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control;
  if (!fds.empty()) {
    control.resize(CMSG_SPACE(sizeof(int) * fds.size()));
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
  }
  for (;;) {
    ssize_t n = ::sendmsg(socket, &msg, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return failErrno("sendmsg");
    if (static_cast<size_t>(n) != bytes.size()) return fail("sendmsg: message cut short");
    return {};
  }
}

Result<ReceivedMessage> receiveMessage(int socket, size_t maxBytes, size_t maxFds,
                                       std::chrono::milliseconds timeout) {
  SLUICE_TRY(waitReadable(socket, timeout), "receive message");
  ReceivedMessage out;
  out.bytes.resize(maxBytes + 1);  // one spare byte reveals an oversized message
  iovec iov{out.bytes.data(), out.bytes.size()};
  std::vector<char> control(CMSG_SPACE(sizeof(int) * std::max<size_t>(maxFds, 1)));
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  ssize_t n;
  do {
    n = ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return failErrno("recvmsg");
  // Take ownership of every descriptor first, so each is closed on every error path below.
  for (cmsghdr* cmsg = CMSG_FIRSTHDR(&msg); cmsg != nullptr; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
    if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof(int));
      out.fds.emplace_back(fd);
    }
  }
  if (msg.msg_flags & MSG_CTRUNC) return fail("message carried more file descriptors than allowed");
  if (out.fds.size() > maxFds) return fail("message carried more file descriptors than allowed");
  if (n == 0 && out.fds.empty()) {
    out.bytes.clear();
    out.eof = true;
    return out;
  }
  if (static_cast<size_t>(n) > maxBytes || (msg.msg_flags & MSG_TRUNC)) {
    return fail("message longer than " + std::to_string(maxBytes) + " bytes");
  }
  out.bytes.resize(static_cast<size_t>(n));
  return out;
}

Result<std::string> readLineFrom(int socket, std::string& buffer, size_t maxBytes,
                                 std::chrono::milliseconds timeout) {
  for (;;) {
    size_t newline = buffer.find('\n');
    if (newline != std::string::npos) {
      std::string line = buffer.substr(0, newline);
      buffer.erase(0, newline + 1);
      return line;
    }
    if (buffer.size() > maxBytes) return fail("line longer than " + std::to_string(maxBytes) + " bytes");
    SLUICE_TRY(waitReadable(socket, timeout), "read line");
    char chunk[4096];
    ssize_t n = ::read(socket, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return failErrno("read");
    if (n == 0) return failErrno("peer closed the connection", ECONNRESET);
    buffer.append(chunk, static_cast<size_t>(n));
  }
}

Status writeAll(int socket, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(socket, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return failErrno("write");
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

}  // namespace sluice
