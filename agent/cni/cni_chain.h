// Chaining sluice-cni into a node's CNI configuration, as istio-cni does: the primary plugin
// (Calico, Cilium, flannel, ...) stays in charge of pod networking and its configuration is
// never replaced; sluice-cni is appended as the last plugin of the configuration the runtime
// uses. Pure functions on names and JSON (the installer in sluice_cni_install_main.cc does I/O).
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

#include "sluice/common/error.h"

namespace sluice::cni {

// The configuration file the container runtime uses: libcni takes the files ending .conf,
// .conflist or .json and the first of them by name.
std::optional<std::string> primaryConfigFile(std::vector<std::string> names);

// The plugin entry the installer adds.
nlohmann::json sluicePluginEntry(const std::string& agentSocket);

// `config` (a conflist, or a single-plugin .conf/.json that becomes one) with `entry` as its
// last plugin; an earlier sluice-cni entry is replaced, so installing again changes nothing.
// Fails naming what is malformed.
Result<nlohmann::json> chainPlugin(const nlohmann::json& config, const nlohmann::json& entry);

// `config` without sluice-cni entries (uninstall).
Result<nlohmann::json> unchainPlugin(const nlohmann::json& config);

}  // namespace sluice::cni
