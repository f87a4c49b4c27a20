// What the agent knows of one pod, and its persistence: the agent's state file holds every pod
// it enrolled (or saw opt out), so a restarted agent knows which pinned kernel state belongs to
// whom and can replay them to the tunnel. Written atomically (temp file + rename): a crash
// leaves either the old or the new file, never half of one.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

#include "sluice/common/error.h"

namespace sluice::agent {

struct PodRecord {
  std::string uid;
  std::string name;
  std::string ns;
  std::string serviceAccount = "default";
  std::string containerId;
  std::string netnsPath;
  uint64_t netnsCookie = 0;
  std::vector<std::string> addresses;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  bool optedOut = false;
  std::string optOutReason;
  // Removed by CNI DEL, its namespace still alive: capture stays (inbound dropped, outbound to
  // nowhere) until the namespace is gone, then the agent removes the rest (Agent::collectClosedPods).
  bool closing = false;

  std::string key() const { return ns + "/" + name; }
};

nlohmann::json toJson(const PodRecord& pod);
Result<PodRecord> podFromJson(const nlohmann::json& j);

// The state file: {"version": 1, "pods": [...]}.
Status savePods(const std::string& path, const std::vector<PodRecord>& pods);
Result<std::vector<PodRecord>> loadPods(const std::string& path);  // empty when absent

}  // namespace sluice::agent
