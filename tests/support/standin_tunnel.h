// A stand-in for the node tunnel, for capture tests before (and apart from) the real ztunnel:
// listeners inside one pod's network namespace, as the tunnel makes them (outbound 15001 on
// loopback, inbound 15006, HBONE 15008; all with the tunnel's socket mark), an accept loop that
// records every accepted connection (and, for 15001, its original destination from the BPF map),
// and an echo on every connection so clients can check their bytes.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "sluice/common/error.h"
#include "sluice/common/socket_address.h"
#include "sluice/common/unique_fd.h"

namespace sluice::testing {

struct AcceptedConnection {
  uint16_t listenerPort = 0;
  SocketAddress local;  // the accepted socket's local address
  SocketAddress peer;
  std::optional<SocketAddress> origDst;  // outbound only
  std::string origDstError;
};

class StandinTunnel {
 public:
  // pinDir: the node agent's pin folder, to read original destinations from.
  // onAccept, when set, is called (from a worker thread) for every accepted connection.
  static Result<std::unique_ptr<StandinTunnel>> start(int netnsFd, uint64_t netnsCookie,
                                                      std::string pinDir, uint32_t mark,
                                                      std::function<void(const AcceptedConnection&)> onAccept = {});
  ~StandinTunnel();

  // The inbound (15006) listener, dual-stack: the agent puts it in the sk_lookup socket map.
  int inboundListenerFd() const { return inbound_.get(); }
  std::vector<AcceptedConnection> accepted() const;
  // Waits until at least `count` connections were accepted (up to 10 s).
  std::vector<AcceptedConnection> waitForAccepted(size_t count) const;

 private:
  StandinTunnel() = default;
  void acceptLoop();
  void serve(UniqueFd conn, uint16_t listenerPort);

  uint64_t netnsCookie_ = 0;
  std::function<void(const AcceptedConnection&)> onAccept_;
  std::string pinDir_;
  UniqueFd outbound4_, outbound6_, inbound_, hbone_;
  UniqueFd stopEvent_;
  std::thread acceptor_;
  mutable std::mutex mutex_;
  std::vector<AcceptedConnection> accepted_;
  std::vector<std::thread> workers_;
  std::vector<int> liveConnections_;
};

}  // namespace sluice::testing
