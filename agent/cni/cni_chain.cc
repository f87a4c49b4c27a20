#include "cni/cni_chain.h"

#include <algorithm>

namespace sluice::cni {

using nlohmann::json;

namespace {

constexpr const char* kPluginType = "sluice-cni";

bool endsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// A conflist, or an error naming what is wrong. A single plugin config becomes a conflist of
// that one plugin (its "name" and "cniVersion" move up to the list).
Result<json> asConfList(const json& config) {
  if (!config.is_object()) return fail("the CNI configuration is not a JSON object");
  if (config.contains("plugins")) {
    if (!config["plugins"].is_array()) return fail("\"plugins\" is not a list");
    for (const auto& p : config["plugins"]) {
      if (!p.is_object() || !p.contains("type") || !p["type"].is_string()) {
        return fail("a plugin of the list has no \"type\"");
      }
    }
    return config;
  }
  if (!config.contains("type") || !config["type"].is_string()) {
    return fail("the CNI configuration has neither \"plugins\" nor a plugin \"type\"");
  }
  json list = {{"cniVersion", config.value("cniVersion", "1.0.0")}, {"name", config.value("name", "k8s-pod-network")}};
  json plugin = config;
  plugin.erase("cniVersion");
  plugin.erase("name");
  list["plugins"] = json::array({plugin});
  return list;
}

}  // namespace

std::optional<std::string> primaryConfigFile(std::vector<std::string> names) {
  std::erase_if(names, [](const std::string& n) {
    return !(endsWith(n, ".conf") || endsWith(n, ".conflist") || endsWith(n, ".json")) || n.starts_with(".");
  });
  if (names.empty()) return std::nullopt;
  return *std::min_element(names.begin(), names.end());
}

json sluicePluginEntry(const std::string& agentSocket) {
  return {{"type", kPluginType}, {"agentSocket", agentSocket}};
}

Result<json> chainPlugin(const json& config, const json& entry) {
  auto list = unchainPlugin(config);
  if (!list) return list;
  (*list)["plugins"].push_back(entry);
  return list;
}

Result<json> unchainPlugin(const json& config) {
  auto list = asConfList(config);
  if (!list) return list;
  json kept = json::array();
  for (const auto& p : (*list)["plugins"]) {
    if (p["type"] != kPluginType) kept.push_back(p);
  }
  if (kept.empty()) return fail("the CNI configuration has no plugin but sluice-cni: the primary plugin is missing");
  (*list)["plugins"] = std::move(kept);
  return list;
}

}  // namespace sluice::cni
