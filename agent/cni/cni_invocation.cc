#include "cni/cni_invocation.h"

#include <fmt/format.h>

namespace sluice::cni {
using nlohmann::json;

namespace {

const std::vector<std::string> kSupportedVersions = {"0.3.0", "0.3.1", "0.4.0", "1.0.0"};

std::unexpected<CniFailure> failure(int code, std::string msg, std::string details = {}) {
  return std::unexpected(CniFailure{code, std::move(msg), std::move(details)});
}

std::map<std::string, std::string> parseArgs(std::string_view text) {
  std::map<std::string, std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find(';', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view pair = text.substr(start, end - start);
    size_t eq = pair.find('=');
    if (eq != std::string_view::npos) out[std::string(pair.substr(0, eq))] = std::string(pair.substr(eq + 1));
    start = end + 1;
  }
  return out;
}

}  // namespace

std::expected<CniInvocation, CniFailure> parseInvocation(const std::map<std::string, std::string>& env,
                                                         std::string_view stdinText) {
  auto get = [&env](const char* name) -> std::string {
    auto it = env.find(name);
    return it == env.end() ? "" : it->second;
  };
  CniInvocation inv;
  inv.command = get("CNI_COMMAND");
  if (inv.command == "VERSION") return inv;
  if (inv.command != "ADD" && inv.command != "DEL" && inv.command != "CHECK") {
    return failure(kInvalidEnvironment, "CNI_COMMAND must be ADD, DEL, CHECK or VERSION",
                   inv.command.empty() ? "CNI_COMMAND is not set" : "got '" + inv.command + "'");
  }
  inv.containerId = get("CNI_CONTAINERID");
  inv.netns = get("CNI_NETNS");
  inv.ifName = get("CNI_IFNAME");
  inv.args = parseArgs(get("CNI_ARGS"));
  if (inv.containerId.empty()) return failure(kInvalidEnvironment, "CNI_CONTAINERID is not set");
  if (inv.ifName.empty()) return failure(kInvalidEnvironment, "CNI_IFNAME is not set");
  if (inv.command != "DEL" && inv.netns.empty()) return failure(kInvalidEnvironment, "CNI_NETNS is not set");

  if (stdinText.size() > kMaxNetconfBytes) {
    return failure(kDecodeFailure, "network configuration is larger than 1 MiB");
  }
  json conf = json::parse(stdinText, nullptr, false);
  if (conf.is_discarded() || !conf.is_object()) {
    return failure(kDecodeFailure, "network configuration on stdin is not a JSON object");
  }
  if (!conf.contains("cniVersion") || !conf["cniVersion"].is_string()) {
    return failure(kInvalidNetworkConfig, "network configuration has no \"cniVersion\"");
  }
  inv.cniVersion = conf["cniVersion"].get<std::string>();
  if (std::find(kSupportedVersions.begin(), kSupportedVersions.end(), inv.cniVersion) == kSupportedVersions.end()) {
    return failure(kIncompatibleVersion, fmt::format("cniVersion {} is not supported", inv.cniVersion),
                   fmt::format("supported: {}", fmt::join(kSupportedVersions, ", ")));
  }
  if (conf.contains("agentSocket")) {
    if (!conf["agentSocket"].is_string() || conf["agentSocket"].get<std::string>().empty()) {
      return failure(kInvalidNetworkConfig, "\"agentSocket\" must be a non-empty string");
    }
    inv.agentSocket = conf["agentSocket"].get<std::string>();
  }
  if (conf.contains("timeoutSeconds")) {
    if (!conf["timeoutSeconds"].is_number_integer() || conf["timeoutSeconds"].get<int>() < 1 ||
        conf["timeoutSeconds"].get<int>() > 600) {
      return failure(kInvalidNetworkConfig, "\"timeoutSeconds\" must be an integer from 1 to 600");
    }
    inv.timeoutSeconds = conf["timeoutSeconds"].get<int>();
  }
  if (conf.contains("prevResult")) {
    if (!conf["prevResult"].is_object()) return failure(kInvalidNetworkConfig, "\"prevResult\" must be an object");
    inv.prevResult = conf["prevResult"];
  }
  // A chained plugin needs the primary plugin's result to know the pod's addresses.
  if (inv.command == "ADD" && inv.prevResult.is_null()) {
    return failure(kInvalidNetworkConfig, "sluice-cni must be chained after an IPAM-assigning plugin",
                   "no prevResult in the network configuration");
  }
  return inv;
}

std::vector<std::string> sandboxAddresses(const json& prevResult, const std::string& ifName) {
  std::vector<std::string> out;
  if (!prevResult.is_object() || !prevResult.contains("ips") || !prevResult["ips"].is_array()) return out;
  const json interfaces = prevResult.value("interfaces", json::array());
  for (const auto& ip : prevResult["ips"]) {
    if (!ip.is_object() || !ip.contains("address") || !ip["address"].is_string()) continue;
    if (ip.contains("interface") && ip["interface"].is_number_unsigned()) {
      size_t index = ip["interface"].get<size_t>();
      if (index >= interfaces.size() || !interfaces[index].is_object() ||
          interfaces[index].value("name", "") != ifName) {
        continue;
      }
    }
    std::string address = ip["address"].get<std::string>();
    out.push_back(address.substr(0, address.find('/')));
  }
  return out;
}

json agentRequest(const CniInvocation& inv) {
  auto arg = [&inv](const char* name) {
    auto it = inv.args.find(name);
    return it == inv.args.end() ? std::string() : it->second;
  };
  return json{{"op", "cni"},
              {"command", inv.command},
              {"containerId", inv.containerId},
              {"netns", inv.netns},
              {"namespace", arg("K8S_POD_NAMESPACE")},
              {"name", arg("K8S_POD_NAME")},
              {"uid", arg("K8S_POD_UID")},
              {"addresses", sandboxAddresses(inv.prevResult, inv.ifName)}};
}

json errorJson(const std::string& cniVersion, const CniFailure& f) {
  json out{{"cniVersion", cniVersion.empty() ? "1.0.0" : cniVersion}, {"code", f.code}, {"msg", f.msg}};
  if (!f.details.empty()) out["details"] = f.details;
  return out;
}

json versionJson() { return json{{"cniVersion", "1.0.0"}, {"supportedVersions", kSupportedVersions}}; }

}  // namespace sluice::cni
