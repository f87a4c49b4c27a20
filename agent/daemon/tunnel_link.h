// The agent's end of the agent <-> tunnel protocol (proto/sluice/zds/v1): the tunnel connects
// to the agent's ZDS socket; the agent sends one WorkloadRequest at a time and waits for its
// Ack. A request that fails on the wire drops the connection: the tunnel reconnects and gets a
// full replay, which is the only way to be sure both sides agree again.
//
// Upgrades: a second tunnel connecting while one is connected takes the link (attach hands the
// previous connection back); once the new one has every pod, the agent tells the previous one
// it is Replaced (retire) and closes it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <sys/types.h>
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
  // Adopts a newly accepted tunnel connection; returns the previous one if that tunnel is still
  // connected (an upgrade's old tunnel), else an empty descriptor.
  UniqueFd attach(UniqueFd connection);
  // Tells the tunnel on `previous` that a newer one took over (ZDS Replaced), waits for its Ack,
  // and closes the connection.
  static Status retire(UniqueFd previous, std::chrono::milliseconds timeout);
  // The connected tunnel's process id as the kernel reports it to the agent (SO_PEERCRED; 0 when
  // none is connected or it runs in a process namespace the agent cannot see).
  pid_t peerPid();
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
