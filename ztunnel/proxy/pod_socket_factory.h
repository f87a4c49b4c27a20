// Where the tunnel's sockets for a pod come from: every socket that acts for a pod (its
// listeners, the upstream connection to its app, an HBONE connection it dials) is made inside
// the pod's network namespace and carries the tunnel's mark, so it leaves exactly as the app's
// own would and the capture programs let it pass. A socket whose mark cannot be set is an
// error, never a socket used anyway: an unmarked tunnel socket would be captured again (a loop).
//
// Injected (ztunnel's inpod/config.rs does the same) so tests without root use LocalSocketFactory.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "capture/delivery_table.h"
#include "engine/socket_endpoint.h"
#include "proxy/pod_runtime.h"
#include "sluice/common/error.h"
#include "sluice/common/socket_address.h"
#include "sluice/common/unique_fd.h"

namespace sluice::ztunnel {

class PodSocketFactory {
 public:
  virtual ~PodSocketFactory() = default;
  // A TCP socket of `family` that will connect from inside the pod (TCP_NODELAY set).
  virtual Result<UniqueFd> upstream(const PodRuntime& pod, int family) const = 0;
  // A listening socket on `address` ("[::]:15008") inside the pod.
  virtual Result<UniqueFd> listener(const PodRuntime& pod, const std::string& address, bool dualStack) const = 0;
  // A TCP socket that will connect to the pod's app at `target` for an inbound connection from
  // `client`: from the client's own address where it can (the app sees its real client), from
  // the pod's address otherwise. TCP_NODELAY set.
  struct Delivery {
    UniqueFd fd;
    std::shared_ptr<void> registration;  // held while fd is open (SocketEndpoint::holdWhileOpen): lets it in
  };
  virtual Result<Delivery> delivery(const PodRuntime& pod, const SocketAddress& target, const SocketAddress& client) const = 0;
};

// The address (port 0) a delivery to `target` binds to for `client`: the client's IP in the
// target's notation (IPv4 arrives on a dual-stack listener as ::ffff:a.b.c.d, and a dual-stack
// socket sends IPv4 that way too); nullopt when the two are not of one IP version (an IPv6
// client of an IPv4 target) or the client has no address (unset, unspecified). Pure.
std::optional<SocketAddress> transparentSource(const SocketAddress& client, const SocketAddress& target);

// The real one: setns into the pod, mark, options. upstream() runs on a worker thread and
// returns it to the host namespace before it returns. Listeners share their port with a
// successor tunnel (SO_REUSEPORT) and carry `reuseportProgram` (ListenerMigration; -1: none).
// The ports transparent deliveries bind to: the half of the node's ephemeral range that clients'
// connect() leaves alone (the parity opposite to its first port, as the kernel's bind(0)),
// walked by one cursor for the whole tunnel with a large stride coprime with that half's size,
// so a port comes back only after every other one was used (a second or more at any rate below
// ~14,000 deliveries a second) and consecutive deliveries are far apart. Pure.
struct PortRange {
  uint16_t first = 32768, last = 60999;
};
uint16_t portAt(uint32_t cursor, PortRange range);
// "32768\t60999" as /proc/sys/net/ipv4/ip_local_port_range says it; nullopt when malformed.
std::optional<PortRange> parsePortRange(std::string_view text);

// Deliveries carry `deliveryMark` and are bound to the client's address (IP_TRANSPARENT), which
// needs the pod's routing for that mark (agent/capture/transparent_delivery.h) and a
// registration in the agent's delivery table (agent/capture/delivery_table.h) for the pod's
// capture to let the SYN through; without a mark or a table they come from the pod's address.
class NetnsSocketFactory final : public PodSocketFactory {
 public:
  // `deliveries`: the agent's table that lets transparent deliveries in (none: no transparency).
  explicit NetnsSocketFactory(uint32_t mark, int reuseportProgram = -1, uint32_t deliveryMark = 0,
                              std::shared_ptr<const agent::DeliveryTable> deliveries = nullptr)
      : mark_(mark), reuseportProgram_(reuseportProgram), deliveryMark_(deliveryMark), deliveries_(std::move(deliveries)) {}
  Result<UniqueFd> upstream(const PodRuntime& pod, int family) const override;
  Result<UniqueFd> listener(const PodRuntime& pod, const std::string& address, bool dualStack) const override;
  Result<Delivery> delivery(const PodRuntime& pod, const SocketAddress& target, const SocketAddress& client) const override;

 private:
  Result<UniqueFd> socketIn(const PodRuntime& pod, int family, uint32_t mark) const;
  uint32_t mark_;
  int reuseportProgram_;
  uint32_t deliveryMark_;
  std::shared_ptr<const agent::DeliveryTable> deliveries_;
};

// Tests without root: sockets in the caller's own namespace, no mark.
class LocalSocketFactory final : public PodSocketFactory {
 public:
  Result<UniqueFd> upstream(const PodRuntime& pod, int family) const override;
  Result<UniqueFd> listener(const PodRuntime& pod, const std::string& address, bool dualStack) const override;
  Result<Delivery> delivery(const PodRuntime& pod, const SocketAddress& target, const SocketAddress&) const override {
    SLUICE_TRY_ASSIGN(fd, upstream(pod, target.family()));
    return Delivery{std::move(fd), nullptr};
  }
};

// TCP_NODELAY: the tunnel forwards what it has at once; batching is the app's business.
Status setNoDelay(int fd);

// Another delivery like this one, for SocketEndpoint::rebindOnAddressInUse (the port it chose
// is still held by a connection the kernel has not finished). `sockets` outlives the endpoint
// (it is the worker's).
std::function<Result<SocketEndpoint::Rebound>()> redelivery(const PodSocketFactory& sockets, std::shared_ptr<PodRuntime> pod,
                                                            SocketAddress target, SocketAddress client);

}  // namespace sluice::ztunnel
