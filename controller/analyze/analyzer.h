// `sluice-controller analyze`: the policy linter. Pure: a loaded ConfigSet in, findings out.
// Each finding names file, object and field, and says why it matters, because the operator
// reading it is usually mid-incident.
#pragma once

#include <string>
#include <vector>

#include "config/config_loader.h"

namespace sluice::controller {

struct Finding {
  enum class Severity { kError, kWarning } severity;
  std::string code;  // stable id, e.g. "subset-matches-nothing"
  std::string file, object, field;
  std::string message;  // what is wrong, and why it matters
  std::string format() const;
};

std::vector<Finding> analyze(const ConfigSet& config);

}  // namespace sluice::controller
