#include "support/standin_tunnel.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>

#include "capture/orig_dst_table.h"
#include "sluice/common/netns.h"

namespace sluice::testing {
namespace {

SocketAddress addressOf(int fd, bool peer) {
  sockaddr_storage ss{};
  socklen_t length = sizeof(ss);
  if (peer) ::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &length);
  else ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &length);
  return SocketAddress::fromSockaddr(reinterpret_cast<sockaddr*>(&ss), length);
}

}  // namespace

Result<std::unique_ptr<StandinTunnel>> StandinTunnel::start(int netnsFd, uint64_t netnsCookie, std::string pinDir,
                                                            uint32_t mark,
                                                            std::function<void(const AcceptedConnection&)> onAccept) {
  std::unique_ptr<StandinTunnel> t(new StandinTunnel());
  t->onAccept_ = std::move(onAccept);
  t->netnsCookie_ = netnsCookie;
  t->pinDir_ = std::move(pinDir);
  struct Spec {
    UniqueFd* fd;
    const char* address;
    bool dualStack;
  } specs[] = {{&t->outbound4_, "127.0.0.1:15001", false},
               {&t->outbound6_, "[::1]:15001", false},
               {&t->inbound_, "[::]:15006", true},
               {&t->hbone_, "[::]:15008", true}};
  for (auto& spec : specs) {
    auto fd = listenInNetns(netnsFd, spec.address, {.mark = mark, .dualStack = spec.dualStack, .backlog = 512});
    if (!fd) return fail(std::move(fd.error()).context("stand-in tunnel"));
    *spec.fd = std::move(*fd);
  }
  t->stopEvent_.reset(::eventfd(0, EFD_CLOEXEC));
  t->acceptor_ = std::thread([raw = t.get()] { raw->acceptLoop(); });
  return t;
}

StandinTunnel::~StandinTunnel() {
  uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(stopEvent_.get(), &one, sizeof(one));
  if (acceptor_.joinable()) acceptor_.join();
  {
    std::lock_guard lock(mutex_);
    for (int fd : liveConnections_) ::shutdown(fd, SHUT_RDWR);
  }
  for (auto& worker : workers_) worker.join();
}

void StandinTunnel::acceptLoop() {
  for (;;) {
    pollfd fds[5] = {{outbound4_.get(), POLLIN, 0}, {outbound6_.get(), POLLIN, 0}, {inbound_.get(), POLLIN, 0},
                     {hbone_.get(), POLLIN, 0}, {stopEvent_.get(), POLLIN, 0}};
    if (::poll(fds, 5, -1) < 0) continue;
    if (fds[4].revents) return;
    for (int i = 0; i < 4; ++i) {
      if (!fds[i].revents) continue;
      int conn = ::accept4(fds[i].fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (conn < 0) continue;
      uint16_t port = addressOf(fds[i].fd, false).port();
      std::lock_guard lock(mutex_);
      liveConnections_.push_back(conn);
      workers_.emplace_back([this, conn, port] { serve(UniqueFd(conn), port); });
    }
  }
}

void StandinTunnel::serve(UniqueFd conn, uint16_t listenerPort) {
  AcceptedConnection record;
  record.listenerPort = listenerPort;
  record.local = addressOf(conn.get(), false);
  record.peer = addressOf(conn.get(), true);
  if (listenerPort == 15001) {
    auto table = agent::OrigDstTable::open(pinDir_);
    auto dst = table ? table->take(netnsCookie_, record.peer) : Result<SocketAddress>(fail(table.error()));
    if (dst) record.origDst = *dst;
    else record.origDstError = dst.error().message();
  }
  {
    std::lock_guard lock(mutex_);
    accepted_.push_back(record);
  }
  if (onAccept_) onAccept_(record);
  char buf[65536];
  for (;;) {
    ssize_t n = ::recv(conn.get(), buf, sizeof(buf), 0);
    if (n <= 0) break;
    ssize_t off = 0;
    while (off < n) {
      ssize_t w = ::send(conn.get(), buf + off, static_cast<size_t>(n - off), MSG_NOSIGNAL);
      if (w <= 0) break;
      off += w;
    }
  }
  ::shutdown(conn.get(), SHUT_WR);
  std::lock_guard lock(mutex_);
  liveConnections_.erase(std::remove(liveConnections_.begin(), liveConnections_.end(), conn.get()),
                         liveConnections_.end());
}

std::vector<AcceptedConnection> StandinTunnel::accepted() const {
  std::lock_guard lock(mutex_);
  return accepted_;
}

std::vector<AcceptedConnection> StandinTunnel::waitForAccepted(size_t count) const {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    auto snapshot = accepted();
    if (snapshot.size() >= count) return snapshot;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return accepted();
}

}  // namespace sluice::testing
