// The tunnel's side of transparent inbound delivery (transparent_delivery.h): the deliveries it
// is making right now, so the pod's sk_lookup program lets their SYN reach the app instead of
// capturing it (it comes from a client's address, like any captured connection). An entry names
// the pod's namespace, the source the delivery socket is bound to (the client's IP and the port
// bind() chose) and the app's port; it lives from just before connect() until just before the
// socket closes, in the pinned map <pinDir>/v1/maps/sluice_deliveries.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "sluice/common/error.h"
#include "sluice/common/socket_address.h"
#include "sluice/common/unique_fd.h"

namespace sluice::agent {

class DeliveryTable : public std::enable_shared_from_this<DeliveryTable> {
 public:
  // Opens the pinned map of the node agent whose pin folder is `pinDir`.
  static Result<std::shared_ptr<const DeliveryTable>> open(const std::string& pinDir);

  // Registers a delivery from `source` (a bound address: IP and port) to the app's `dstPort` in
  // the namespace `netnsCookie`; the registration ends when the returned handle is destroyed
  // (the handle keeps the table open). Fails with code EEXIST when that delivery is registered
  // already (a live connection has that address, port and app port).
  Result<std::shared_ptr<void>> add(uint64_t netnsCookie, const SocketAddress& source, uint16_t dstPort) const;

 private:
  explicit DeliveryTable(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace sluice::agent
