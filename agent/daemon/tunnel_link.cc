#include "daemon/tunnel_link.h"

#include <poll.h>
#include <sys/socket.h>

#include <condition_variable>

#include "sluice/common/unix_socket.h"

namespace sluice::agent {

namespace {
// Acks are tiny; anything bigger is a confused or hostile peer.
constexpr size_t kMaxAckBytes = 4096;
constexpr size_t kMaxAckFds = 1;
}  // namespace

void TunnelLink::attach(UniqueFd connection) {
  {
    std::lock_guard lock(mutex_);
    connection_ = std::move(connection);
  }
  attached_.notify_all();
}

bool TunnelLink::connected() {
  std::lock_guard lock(mutex_);
  if (!connection_) return false;
  // A closed peer shows as POLLHUP/POLLRDHUP without waiting.
  pollfd pfd{connection_.get(), POLLRDHUP, 0};
  if (::poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLHUP | POLLRDHUP | POLLERR))) {
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
  std::string bytes = request.SerializeAsString();
  int fds[1] = {netnsFd};
  auto sent = sendMessage(connection_.get(), bytes, netnsFd >= 0 ? std::span<const int>(fds, 1) : std::span<const int>());
  if (!sent) {
    connection_.reset();
    return fail(std::move(sent.error()).context("send to tunnel"));
  }
  auto reply = receiveMessage(connection_.get(), kMaxAckBytes, kMaxAckFds, timeout);
  if (!reply || reply->eof) {
    connection_.reset();
    if (!reply) return fail(std::move(reply.error()).context("tunnel acknowledgement"));
    return fail("the tunnel closed the connection before acknowledging");
  }
  zds::v1::WorkloadResponse response;
  if (!response.ParseFromString(reply->bytes) || !response.has_ack()) {
    connection_.reset();
    return fail("the tunnel answered with something that is not an Ack");
  }
  const auto& ack = response.ack();
  TunnelAck out{ack.error(), {}};
  if (reply->fds.size() != ack.inbound_listeners()) {
    connection_.reset();
    return fail("the tunnel's Ack announced " + std::to_string(ack.inbound_listeners()) +
                " listener(s) but carried " + std::to_string(reply->fds.size()));
  }
  out.inbound = std::move(reply->fds);
  return out;
}

}  // namespace sluice::agent
