#include "daemon/tunnel_link.h"

#include <poll.h>
#include <sys/socket.h>

#include <condition_variable>
#include <utility>

#include "sluice/common/unix_socket.h"

namespace sluice::agent {

namespace {
// Acks are tiny; anything bigger is a confused or hostile peer.
constexpr size_t kMaxAckBytes = 4096;
constexpr size_t kMaxAckFds = 1;

// A closed peer shows as POLLHUP/POLLRDHUP without waiting.
bool peerGone(int fd) {
  pollfd pfd{fd, POLLRDHUP, 0};
  return ::poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLHUP | POLLRDHUP | POLLERR));
}

// One request and its Ack on `fd`. Any failure means the two sides may disagree: the caller
// drops the connection.
Result<TunnelAck> exchange(int fd, const zds::v1::WorkloadRequest& request, int netnsFd,
                           std::chrono::milliseconds timeout) {
  std::string bytes = request.SerializeAsString();
  int fds[1] = {netnsFd};
  auto sent = sendMessage(fd, bytes, netnsFd >= 0 ? std::span<const int>(fds, 1) : std::span<const int>());
  if (!sent) return fail(std::move(sent.error()).context("send to tunnel"));
  auto reply = receiveMessage(fd, kMaxAckBytes, kMaxAckFds, timeout);
  if (!reply) return fail(std::move(reply.error()).context("tunnel acknowledgement"));
  if (reply->eof) return fail("the tunnel closed the connection before acknowledging");
  zds::v1::WorkloadResponse response;
  if (!response.ParseFromString(reply->bytes) || !response.has_ack()) {
    return fail("the tunnel answered with something that is not an Ack");
  }
  const auto& ack = response.ack();
  if (reply->fds.size() != ack.inbound_listeners()) {
    return fail("the tunnel's Ack announced " + std::to_string(ack.inbound_listeners()) + " listener(s) but carried " +
                std::to_string(reply->fds.size()));
  }
  return TunnelAck{ack.error(), std::move(reply->fds)};
}

}  // namespace

UniqueFd TunnelLink::attach(UniqueFd connection) {
  UniqueFd previous;
  {
    std::lock_guard lock(mutex_);
    previous = std::exchange(connection_, std::move(connection));
  }
  attached_.notify_all();
  // A tunnel reconnects only after closing its previous connection, so one still open is
  // another tunnel: the one being upgraded.
  if (previous && peerGone(previous.get())) previous.reset();
  return previous;
}

Status TunnelLink::retire(UniqueFd previous, std::chrono::milliseconds timeout) {
  zds::v1::WorkloadRequest replaced;
  replaced.mutable_replaced();
  auto ack = exchange(previous.get(), replaced, -1, timeout);
  if (!ack) return fail(std::move(ack.error()).context("tell the previous tunnel it is replaced"));
  if (!ack->error.empty()) return fail("the previous tunnel refused to hand over: " + ack->error);
  return {};
}

pid_t TunnelLink::peerPid() {
  std::lock_guard lock(mutex_);
  if (!connection_) return 0;
  ucred credentials{};
  socklen_t length = sizeof(credentials);
  if (::getsockopt(connection_.get(), SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) return 0;
  return credentials.pid;
}

bool TunnelLink::connected() {
  std::lock_guard lock(mutex_);
  if (!connection_) return false;
  if (peerGone(connection_.get())) {
    connection_.reset();
    return false;
  }
  return true;
}

void TunnelLink::disconnect() {
  std::lock_guard lock(mutex_);
  connection_.reset();
}

bool TunnelLink::waitConnected(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!connected()) {
    std::unique_lock lock(mutex_);
    if (attached_.wait_until(lock, deadline) == std::cv_status::timeout) return connection_.valid();
  }
  return true;
}

Result<TunnelAck> TunnelLink::request(const zds::v1::WorkloadRequest& request, int netnsFd,
                                      std::chrono::milliseconds timeout) {
  std::lock_guard lock(mutex_);
  if (!connection_) return fail("the tunnel (ztunnel) is not connected to the agent");
  auto ack = exchange(connection_.get(), request, netnsFd, timeout);
  if (!ack) connection_.reset();
  return ack;
}

}  // namespace sluice::agent
