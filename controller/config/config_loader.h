// The standalone controller's source of truth: a directory of Kubernetes-style YAML files
// (several objects per file, separated by ---). Loading is all or nothing: the first problem in
// any file refuses the whole directory, naming file, object and field, so a half-valid edit
// never reaches a node and the last good configuration stays in force (the caller keeps it).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "sluice/common/error.h"
#include "sluice/config/v1/config.pb.h"

namespace sluice::controller {

struct LoadedResource {
  std::string file;  // where it was defined
  config::v1::Resource resource;
};

struct ConfigSet {
  // By resource name "<Kind>/<namespace>/<name>", so iteration order is stable.
  std::map<std::string, LoadedResource> resources;
  // Every Workload address (canonical text) and the resource that claims it: two workloads
  // may not share one (the data path would pick either; the loader refuses the second).
  std::map<std::string, std::string> workloadAddresses;

  std::vector<const config::v1::Workload*> workloads() const;
  std::vector<const config::v1::Service*> services() const;
};

// Loads every *.yaml / *.yml file directly in `dir` (sorted by name).
Result<ConfigSet> loadConfigDirectory(const std::string& dir);

// Parses one file's text; `file` names it in errors. Adds to `into`.
Status loadConfigText(const std::string& file, const std::string& text, ConfigSet& into);

// Adds every resource of `one` to `into`, or nothing: refuses a resource `into` already has
// and a workload address another workload of `into` claims. For sources that load object by
// object and leave out the ones refused (the Kubernetes API), where the directory is all or
// nothing.
Status mergeConfig(ConfigSet& into, ConfigSet one);

// yaml-cpp parses recursively, one stack frame chain per nesting level: a hostile file nested
// deeply enough would exhaust the controller's stack. Refuses flow nesting ([ {) deeper than
// 64 and lines indented more than 256 columns (which bounds block nesting), before parsing.
Status checkYamlNesting(const std::string& file, std::string_view text);

// Fills every Service's endpoints from the workloads its selector matches (same namespace), and
// gives every resource a content version.
void finishConfig(ConfigSet& config);

}  // namespace sluice::controller
