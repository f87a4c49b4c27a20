#include "sluice/common/process_requirements.h"

#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <iostream>

namespace sluice {

nlohmann::json toJson(const ProcessRequirements& requirements) {
  nlohmann::json caps = nlohmann::json::array(), paths = nlohmann::json::array();
  for (const auto& c : requirements.capabilities) caps.push_back({{"name", c.name}, {"why", c.why}});
  for (const auto& p : requirements.hostPaths) paths.push_back({{"hostPath", p.hostPath}, {"why", p.why}});
  nlohmann::json api = nlohmann::json::array();
  for (const auto& a : requirements.apiResources) {
    api.push_back({{"group", a.group}, {"resource", a.resource}, {"verbs", a.verbs}, {"why", a.why}});
  }
  return {{"program", requirements.program}, {"capabilities", caps}, {"hostPaths", paths}, {"apiResources", api}};
}

std::vector<CapabilityNeed> missingCapabilities(const ProcessRequirements& requirements, uint64_t effective) {
  std::vector<CapabilityNeed> missing;
  for (const auto& c : requirements.capabilities) {
    if (c.capability < 0 || c.capability > 63 || (effective & (uint64_t{1} << c.capability)) == 0) missing.push_back(c);
  }
  return missing;
}

Result<uint64_t> effectiveCapabilities() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (::syscall(SYS_capget, &header, data) != 0) return failErrno("capget");
  return uint64_t{data[0].effective} | (uint64_t{data[1].effective} << 32);
}

Status checkCapabilities(const ProcessRequirements& requirements) {
  auto effective = effectiveCapabilities();
  if (!effective) return fail(std::move(effective.error()));
  auto missing = missingCapabilities(requirements, *effective);
  if (missing.empty()) return {};
  std::string list;
  for (const auto& c : missing) list += fmt::format("{}{} ({})", list.empty() ? "" : "; ", c.name, c.why);
  return fail(fmt::format("{} lacks {}: {}", requirements.program,
                          missing.size() == 1 ? "a capability it needs" : "capabilities it needs", list));
}

void printRequirements(const ProcessRequirements& requirements) {
  std::cout << toJson(requirements).dump(2) << std::endl;
}

bool startupCapabilitiesOk(const ProcessRequirements& requirements) {
  auto ok = checkCapabilities(requirements);
  if (!ok) spdlog::error("cannot start: {}", ok.error().message());
  return ok.has_value();
}

}  // namespace sluice
