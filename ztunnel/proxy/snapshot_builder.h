// Turns the controller's resources into the data path's ConfigSnapshot, on the control thread
// (never on a worker). Fails, naming the resource, when the resources can't be honoured
// exactly (a route to a subset no DestinationRule defines, a bad VIP): the node then NACKs and
// keeps serving its last good snapshot.
#pragma once

#include <map>
#include <string>

#include "proxy/node_traffic_state.h"
#include "proxy/config_snapshot.h"
#include "sluice/common/error.h"
#include "sluice/config/v1/config.pb.h"

namespace sluice::ztunnel {

// `node`: the node's shared traffic state, whose circuit breakers and rate-limit buckets are
// attached to the destinations that have them, the same ones across updates (null: each
// snapshot gets its own rate-limit buckets, and no breakers: as in tests that don't need them).
Result<ConfigSnapshot> buildSnapshot(const std::map<std::string, config::v1::Resource>& resources,
                                     NodeTrafficState* node = nullptr);

}  // namespace sluice::ztunnel
