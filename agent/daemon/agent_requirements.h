// What sluice-agent needs from its node (see sluice/common/process_requirements.h for how the
// table is used: start-up check, --print-requirements, the Helm chart's check).
#pragma once

#include "sluice/common/process_requirements.h"

namespace sluice::agent {

ProcessRequirements agentRequirements();

}  // namespace sluice::agent
