#include "simcluster/least_privilege.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>

#include "sluice/common/process.h"

namespace sluice::sim {

Result<std::string> boundingSetArgument(std::string_view requirementsJson) {
  auto doc = nlohmann::json::parse(requirementsJson, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("capabilities") || !doc["capabilities"].is_array()) {
    return fail("requirements are not a JSON object with a \"capabilities\" list");
  }
  std::string out = "-all";
  for (const auto& cap : doc["capabilities"]) {
    if (!cap.is_object() || !cap.contains("name") || !cap["name"].is_string()) {
      return fail("a requirements capability has no \"name\"");
    }
    std::string name = cap["name"].get<std::string>();
    if (name.rfind("CAP_", 0) != 0 || name.size() == 4 ||
        !std::all_of(name.begin() + 4, name.end(), [](char c) { return std::isupper(static_cast<unsigned char>(c)) || c == '_'; })) {
      return fail("not a capability name: " + name);
    }
    std::string lower = name.substr(4);
    std::transform(lower.begin(), lower.end(), lower.begin(), [](char c) { return static_cast<char>(std::tolower(c)); });
    out += ",+" + lower;
  }
  return out;
}

Result<std::vector<std::string>> withOnlyDeclaredCapabilities(std::vector<std::string> argv) {
  if (argv.empty()) return fail("no program to run");
  auto printed = runChecked({.argv = {argv[0], "--print-requirements"}, .captureOutput = true});
  if (!printed) return fail(std::move(printed.error()).context("ask " + argv[0] + " for its requirements"));
  auto bounding = boundingSetArgument(printed->out);
  if (!bounding) return fail(std::move(bounding.error()).context(argv[0] + " --print-requirements"));
  std::vector<std::string> wrapped = {"setpriv", "--bounding-set", *bounding, "--"};
  wrapped.insert(wrapped.end(), std::make_move_iterator(argv.begin()), std::make_move_iterator(argv.end()));
  return wrapped;
}

}  // namespace sluice::sim
