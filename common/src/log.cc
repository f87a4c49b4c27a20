#include "sluice/common/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>
#include <string>

namespace sluice {

void initLogging(std::string_view program) {
  auto logger = spdlog::stderr_color_mt(std::string(program));
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %n: %v", spdlog::pattern_time_type::utc);
  spdlog::level::level_enum level = spdlog::level::info;
  if (const char* env = std::getenv("SLUICE_LOG")) {
    // from_str maps an unknown name to "off"; refuse that silently dropping logs.
    auto parsed = spdlog::level::from_str(env);
    if (parsed != spdlog::level::off || std::string_view(env) == "off") level = parsed;
  }
  logger->set_level(level);
  spdlog::set_default_logger(std::move(logger));
}

}  // namespace sluice
