// The agent's control socket: a unix stream socket speaking JSON lines. sluice-cni and
// sluicectl send one request line and read the answer; a "trace" request streams events until
// the client goes away. Every request is hostile until validated: size-limited, parsed without
// exceptions, each field type-checked, and an unknown "op" refused by name.
//
//   {"op":"cni","command":"ADD|DEL|CHECK","containerId":..,"netns":..,"namespace":..,"name":..,
//    "uid":..,"addresses":[..]}
//   {"op":"status"} {"op":"pods"} {"op":"pod","pod":"ns/name"}
//   {"op":"explain","pod":"ns/name","to":"10.0.0.1:80"}
//   {"op":"trace","pod":"ns/name"}              ("pod" optional)
// Answers: {"ok":true,...} or {"ok":false,"error":"..."}; trace: one {"event":{..}} per line.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>

#include "daemon/agent.h"

namespace sluice::agent {

inline constexpr size_t kMaxRequestBytes = 64 * 1024;

// Answers one (non-trace) request.
nlohmann::json handleRequest(Agent& agent, const nlohmann::json& request);

// Serves one accepted control connection to its end (reads the request, answers or streams).
void serveControlConnection(Agent& agent, int connection, const std::atomic<bool>& stopping);

}  // namespace sluice::agent
