#include "simcluster/cni_runtime.h"

#include <fmt/format.h>

#include "sluice/common/process.h"

namespace sluice::sim {

using nlohmann::json;

json pluginNetconf(const CniConfList& list, size_t pluginIndex, const json* prevResult) {
  json conf = list.plugins.at(pluginIndex);
  conf["name"] = list.name;
  conf["cniVersion"] = list.cniVersion;
  if (prevResult != nullptr && !prevResult->is_null()) conf["prevResult"] = *prevResult;
  return conf;
}

std::vector<std::string> cniEnvironment(std::string_view command, const CniTarget& target) {
  return {
      fmt::format("CNI_COMMAND={}", command),
      fmt::format("CNI_CONTAINERID={}", target.containerId),
      fmt::format("CNI_NETNS={}", target.netnsPath),
      fmt::format("CNI_IFNAME={}", target.ifName),
      fmt::format("CNI_PATH={}", target.pluginPath),
      fmt::format("CNI_ARGS={}", target.args),
  };
}

std::string describePluginFailure(std::string_view plugin, int exitCode, std::string_view out,
                                  std::string_view err) {
  auto parsed = json::parse(out, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_object() && parsed.contains("msg")) {
    std::string msg = parsed.value("msg", "");
    std::string details = parsed.value("details", "");
    return fmt::format("CNI plugin {} failed (code {}): {}{}", plugin, parsed.value("code", 0), msg,
                       details.empty() ? "" : " (" + details + ")");
  }
  std::string text(err.empty() ? out : err);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return fmt::format("CNI plugin {} exited with {}: {}", plugin, exitCode,
                     text.empty() ? "no output" : text);
}

Result<AssignedAddresses> addressesFromResult(const json& result, std::string_view ifName) {
  if (!result.is_object() || !result.contains("ips") || !result["ips"].is_array()) {
    return fail("CNI result has no \"ips\" list");
  }
  const json& interfaces = result.value("interfaces", json::array());
  AssignedAddresses out;
  for (const auto& ip : result["ips"]) {
    if (!ip.is_object() || !ip.contains("address") || !ip["address"].is_string()) {
      return fail("CNI result: an \"ips\" entry has no \"address\" string");
    }
    // Keep only addresses on the sandbox's interface, when the plugin says which it is.
    if (ip.contains("interface") && ip["interface"].is_number_unsigned()) {
      size_t index = ip["interface"].get<size_t>();
      if (index >= interfaces.size()) return fail("CNI result: interface index out of range");
      if (interfaces[index].value("name", "") != ifName) continue;
    }
    std::string address = ip["address"].get<std::string>();
    address = address.substr(0, address.find('/'));
    bool v6 = address.find(':') != std::string::npos;
    std::string& slot = v6 ? out.ipv6 : out.ipv4;
    if (slot.empty()) slot = address;
  }
  if (out.ipv4.empty() && out.ipv6.empty()) {
    return fail(fmt::format("CNI result assigns no address to {}", ifName));
  }
  return out;
}

Result<std::string> findPlugin(const std::string& pluginPath, const std::string& type) {
  if (auto found = findInPath(pluginPath, type)) return *found;
  return fail(fmt::format("CNI plugin \"{}\" not found in CNI_PATH {}", type, pluginPath));
}

namespace {

Result<json> invokePlugin(std::string_view command, const CniConfList& list, size_t index,
                          const CniTarget& target, const json* prevResult) {
  json conf = pluginNetconf(list, index, prevResult);
  std::string type = conf.value("type", "");
  if (type.empty() || type.find('/') != std::string::npos) {
    return fail(fmt::format("plugin {} of network {} has no valid \"type\"", index, list.name));
  }
  auto program = findPlugin(target.pluginPath, type);
  if (!program) return fail(std::move(program.error()).context(fmt::format("CNI {}", command)));
  SpawnOptions options;
  options.argv = {*program};
  options.extraEnv = cniEnvironment(command, target);
  options.netnsFd = target.runInNetnsFd;
  auto out = run(options, conf.dump());
  if (!out) return fail(std::move(out.error()).context(fmt::format("CNI {} {}", command, type)));
  if (out->exitCode != 0) {
    return fail(describePluginFailure(type, out->exitCode, out->out, out->err));
  }
  if (command != "ADD") return json();
  auto result = json::parse(out->out, nullptr, false);
  if (result.is_discarded() || !result.is_object()) {
    return fail(fmt::format("CNI plugin {} printed a result that is not a JSON object", type));
  }
  return result;
}

}  // namespace

Result<json> cniAdd(const CniConfList& list, const CniTarget& target) {
  json prev;
  for (size_t i = 0; i < list.plugins.size(); ++i) {
    auto result = invokePlugin("ADD", list, i, target, i == 0 ? nullptr : &prev);
    if (!result) return fail(std::move(result.error()));
    prev = std::move(*result);
  }
  return prev;
}

Status cniDel(const CniConfList& list, const CniTarget& target, const json& lastResult, size_t plugins) {
  Status first;
  size_t stop = plugins >= list.plugins.size() ? 0 : list.plugins.size() - plugins;
  for (size_t i = list.plugins.size(); i-- > stop;) {
    auto done = invokePlugin("DEL", list, i, target, &lastResult);
    if (!done && first) first = fail(std::move(done.error()));
  }
  return first;
}

}  // namespace sluice::sim
