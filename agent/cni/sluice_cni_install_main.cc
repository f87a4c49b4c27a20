// sluice-cni-install: the node DaemonSet's init step. Copies sluice-cni into the node's CNI
// binary folder and chains it into the configuration the container runtime uses (see
// cni/cni_chain.h); --uninstall takes both back out. Idempotent: running it again changes
// nothing. Fails (and so the init container retries) while the node has no primary CNI
// configuration yet, naming the folder.
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <vector>

#include "cni/cni_chain.h"
#include "cni/cni_invocation.h"
#include "sluice/common/files.h"
#include "sluice/common/log.h"
#include "sluice/common/process.h"
#include "sluice/common/process_requirements.h"

namespace fs = std::filesystem;
using namespace sluice;
using namespace sluice::cni;

namespace {

constexpr size_t kMaxConfigBytes = 1 << 20;

ProcessRequirements installerRequirements() {
  return {.program = "sluice-cni-install",
          .capabilities = {},
          .hostPaths = {{"/opt/cni/bin", "where the container runtime finds CNI plugins: sluice-cni is copied there"},
                        {"/etc/cni/net.d", "the node's CNI configuration: sluice-cni is chained into it"}}};
}

Result<std::string> primaryConfigPath(const std::string& confDir) {
  std::error_code ec;
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(confDir, ec)) {
    if (entry.is_regular_file(ec)) names.push_back(entry.path().filename().string());
  }
  if (ec) return fail("read " + confDir + ": " + ec.message());
  auto primary = primaryConfigFile(names);
  if (!primary) return fail("no CNI configuration in " + confDir + " yet: the primary CNI plugin must be installed first");
  return confDir + "/" + *primary;
}

Status installBinary(const std::string& binDir) {
  auto binary = readFile(siblingProgram("sluice-cni"));
  if (!binary) return fail(std::move(binary.error()).context("read sluice-cni"));
  return writeFileAtomically(binDir + "/sluice-cni", *binary, 0755);
}

// Rewrites the primary configuration with `edit` applied. A single-plugin .conf/.json becomes a
// .conflist of the same name (libcni reads a .conf as one plugin), and the old file goes.
template <typename Edit>
Status rewriteConfig(const std::string& confDir, Edit edit) {
  auto path = primaryConfigPath(confDir);
  if (!path) return fail(std::move(path.error()));
  auto text = readFile(*path);
  if (!text) return fail(std::move(text.error()));
  if (text->size() > kMaxConfigBytes) return fail(*path + " is larger than 1 MiB");
  auto config = nlohmann::json::parse(*text, nullptr, false);
  if (config.is_discarded()) return fail(*path + " is not JSON");
  auto edited = edit(config);
  if (!edited) return fail(std::move(edited.error()).context(*path));
  std::string target = fs::path(*path).replace_extension(".conflist").string();
  SLUICE_TRY(writeFileAtomically(target, edited->dump(2) + "\n", 0644), "write CNI configuration");
  if (target != *path && ::unlink(path->c_str()) != 0) return failErrno("remove " + *path);
  spdlog::info("{} {}", target, target != *path ? "written (from " + *path + ")" : "updated");
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  initLogging("sluice-cni-install");
  CLI::App app{"Install sluice-cni into a node's CNI folders, chained after the primary plugin"};
  std::string binDir = "/opt/cni/bin", confDir = "/etc/cni/net.d", agentSocket = kDefaultAgentSocket;
  bool uninstall = false;
  app.add_option("--bin-dir", binDir, "CNI plugin folder")->capture_default_str();
  app.add_option("--conf-dir", confDir, "CNI configuration folder")->capture_default_str();
  app.add_option("--agent-socket", agentSocket, "the node agent's control socket, as the plugin will see it")
      ->capture_default_str();
  app.add_flag("--uninstall", uninstall, "remove sluice-cni from the configuration and the plugin folder");
  app.add_flag_callback(
      "--print-requirements", [] { printRequirements(installerRequirements()); throw CLI::Success(); },
      "print the capabilities and host folders this program needs (JSON) and exit");
  CLI11_PARSE(app, argc, argv);

  Status done = uninstall ? rewriteConfig(confDir, [](const nlohmann::json& c) { return unchainPlugin(c); })
                          : installBinary(binDir);
  if (done && !uninstall) {
    auto entry = sluicePluginEntry(agentSocket);
    done = rewriteConfig(confDir, [&](const nlohmann::json& c) { return chainPlugin(c, entry); });
  }
  if (done && uninstall && ::unlink((binDir + "/sluice-cni").c_str()) != 0 && errno != ENOENT) {
    done = failErrno("remove " + binDir + "/sluice-cni");
  }
  if (!done) {
    spdlog::error("{}", done.error().message());
    return 1;
  }
  return 0;
}
