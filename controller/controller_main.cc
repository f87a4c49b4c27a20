// sluice-controller: Sluice's control plane.
//
//   sluice-controller analyze DIR [--strict]   lint a configuration directory; exit 1 when a
//                                             file is refused or an error is found (with
//                                             --strict, also on warnings)
// The serving mode (watch DIR, push to nodes over gRPC, sign certificates) is planned.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "analyze/analyzer.h"
#include "config/config_loader.h"

int main(int argc, char** argv) {
  CLI::App app{"Sluice controller"};
  app.require_subcommand(1);
  std::string dir;
  bool strict = false;
  auto* analyzeCmd = app.add_subcommand("analyze", "find problems in a configuration directory");
  analyzeCmd->add_option("dir", dir, "directory of YAML files")->required();
  analyzeCmd->add_flag("--strict", strict, "fail on warnings too");
  CLI11_PARSE(app, argc, argv);

  auto config = sluice::controller::loadConfigDirectory(dir);
  if (!config) {
    fmt::print("ERROR [refused] {}\n", config.error().message());
    return 1;
  }
  auto findings = sluice::controller::analyze(*config);
  int errors = 0, warnings = 0;
  for (const auto& f : findings) {
    fmt::print("{}\n", f.format());
    (f.severity == sluice::controller::Finding::Severity::kError ? errors : warnings)++;
  }
  fmt::print(stderr, "{} objects, {} errors, {} warnings\n", config->resources.size(), errors, warnings);
  return errors > 0 || (strict && warnings > 0) ? 1 : 0;
}
