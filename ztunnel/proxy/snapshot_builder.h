// Turns the controller's resources into the data path's ConfigSnapshot, on the control thread
// (never on a worker). Fails, naming the resource, when the resources can't be honoured
// exactly (a route to a subset no DestinationRule defines, a bad VIP): the node then NACKs and
// keeps serving its last good snapshot.
#pragma once

#include <map>
#include <string>

#include "proxy/circuit_breaker.h"
#include "proxy/config_snapshot.h"
#include "sluice/common/error.h"
#include "sluice/config/v1/config.pb.h"

namespace sluice::ztunnel {

// `breakers`: the node's circuit breakers, attached to the destinations whose connectionPool
// counts something (null: limits are not enforced, as in tests that don't need them).
Result<ConfigSnapshot> buildSnapshot(const std::map<std::string, config::v1::Resource>& resources,
                                     CircuitBreakers* breakers = nullptr);

}  // namespace sluice::ztunnel
