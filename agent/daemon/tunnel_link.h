// The agent's end of the agent <-> tunnel protocol (proto/sluice/zds/v1): the tunnel connects
// to the agent's ZDS socket; the agent sends one WorkloadRequest at a time and waits for its
// Ack. A request that fails on the wire drops the connection: the tunnel reconnects and gets a
// full replay, which is the only way to be sure both sides agree again.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <vector>

#include "sluice/common/error.h"
#include "sluice/common/unique_fd.h"
#include "sluice/zds/v1/zds.pb.h"

namespace sluice::agent {

struct TunnelAck {
  std::string error;              // the tunnel's refusal, empty on success
  std::vector<UniqueFd> inbound;  // inbound listener(s) for an AddWorkload
};

class TunnelLink {
 public:
  // Adopts a newly accepted tunnel connection, replacing (closing) any previous one.
  void attach(UniqueFd connection);
  bool connected();
  void disconnect();
  // Waits until a tunnel is attached, up to `timeout`.
  bool waitConnected(std::chrono::milliseconds timeout);

  // Sends `request` (with `netnsFd` attached when >= 0) and returns the tunnel's Ack.
  Result<TunnelAck> request(const zds::v1::WorkloadRequest& request, int netnsFd,
                            std::chrono::milliseconds timeout);

 private:
  std::mutex mutex_;  // one request in flight at a time; guards connection_
  std::condition_variable attached_;
  UniqueFd connection_;
};

}  // namespace sluice::agent
