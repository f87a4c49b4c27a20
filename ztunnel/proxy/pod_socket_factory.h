// Where the tunnel's sockets for a pod come from: every socket that acts for a pod (its
// listeners, the upstream connection to its app, an HBONE connection it dials) is made inside
// the pod's network namespace and carries the tunnel's mark, so it leaves exactly as the app's
// own would and the capture programs let it pass. A socket whose mark cannot be set is an
// error, never a socket used anyway: an unmarked tunnel socket would be captured again (a loop).
//
// Injected (ztunnel's inpod/config.rs does the same) so tests without root use LocalSocketFactory.
#pragma once

#include <cstdint>
#include <string>

#include "proxy/pod_runtime.h"
#include "sluice/common/error.h"
#include "sluice/common/unique_fd.h"

namespace sluice::ztunnel {

class PodSocketFactory {
 public:
  virtual ~PodSocketFactory() = default;
  // A TCP socket of `family` that will connect from inside the pod (TCP_NODELAY set).
  virtual Result<UniqueFd> upstream(const PodRuntime& pod, int family) const = 0;
  // A listening socket on `address` ("[::]:15008") inside the pod.
  virtual Result<UniqueFd> listener(const PodRuntime& pod, const std::string& address, bool dualStack) const = 0;
};

// The real one: setns into the pod, mark, options. upstream() runs on a worker thread and
// returns it to the host namespace before it returns. Listeners share their port with a
// successor tunnel (SO_REUSEPORT) and carry `reuseportProgram` (ListenerMigration; -1: none).
class NetnsSocketFactory final : public PodSocketFactory {
 public:
  explicit NetnsSocketFactory(uint32_t mark, int reuseportProgram = -1) : mark_(mark), reuseportProgram_(reuseportProgram) {}
  Result<UniqueFd> upstream(const PodRuntime& pod, int family) const override;
  Result<UniqueFd> listener(const PodRuntime& pod, const std::string& address, bool dualStack) const override;

 private:
  uint32_t mark_;
  int reuseportProgram_;
};

// Tests without root: sockets in the caller's own namespace, no mark.
class LocalSocketFactory final : public PodSocketFactory {
 public:
  Result<UniqueFd> upstream(const PodRuntime& pod, int family) const override;
  Result<UniqueFd> listener(const PodRuntime& pod, const std::string& address, bool dualStack) const override;
};

// TCP_NODELAY: the tunnel forwards what it has at once; batching is the app's business.
Status setNoDelay(int fd);

}  // namespace sluice::ztunnel
