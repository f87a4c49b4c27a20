// Logging: spdlog behind one setup call, so every binary logs in the same format.
// Use SPDLOG_* macros or spdlog::info/warn/error directly after initLogging().
#pragma once

#include <spdlog/spdlog.h>

#include <string_view>

namespace sluice {

// Sets the default logger's name (the binary: "sluice-agent", "ztunnel", ...), format and level.
// The level comes from SLUICE_LOG (trace|debug|info|warn|error|off), default info.
// Logs go to stderr so stdout stays free for a tool's machine-readable output.
void initLogging(std::string_view program);

}  // namespace sluice
