// The tunnel's side of outbound capture: given a connection accepted on a pod's outbound
// listener, find where the app meant to connect. The connect4/6 programs recorded it and the
// sockops program keyed it by (pod netns cookie, app's local port) = (listener's netns, the
// accepted socket's peer port), in the pinned map <pinDir>/v1/maps/sluice_conn_dst.
#pragma once

#include <cstdint>
#include <string>

#include "sluice/common/error.h"
#include "sluice/common/socket_address.h"
#include "sluice/common/unique_fd.h"

namespace sluice::agent {

class OrigDstTable {
 public:
  // Opens the pinned map of the node agent whose pin folder is `pinDir`.
  static Result<OrigDstTable> open(const std::string& pinDir);

  // The original destination of the connection whose peer (the app) is `peer`, accepted in the
  // namespace `netnsCookie`. Fails with ENOENT when there is no record (not a captured socket).
  // The record is consumed: a second lookup fails.
  Result<SocketAddress> take(uint64_t netnsCookie, const SocketAddress& peer) const;

 private:
  explicit OrigDstTable(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace sluice::agent
