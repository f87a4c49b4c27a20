// The command-line flags by which a program is pointed at the Kubernetes API, the same for every
// program that reads it (controller, agent): --kubernetes (in a pod, its service account), or
// --kube-api URL --kube-ca FILE [--kube-token FILE]. Header-only: for mains that link CLI11.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "sluice/kube/kube_api_client.h"

namespace sluice::kube {

struct ApiServerFlags {
  bool inCluster = false;
  ApiServer server;
  CLI::Option* inClusterOption = nullptr;  // for excludes() against another source
  CLI::Option* apiOption = nullptr;
};

// `what` says what the API is read for ("configuration", "pods' metadata").
inline void addApiServerFlags(CLI::App& app, ApiServerFlags& flags, const std::string& what) {
  flags.inClusterOption =
      app.add_flag("--kubernetes", flags.inCluster, what + " from the Kubernetes API, with this pod's service account");
  flags.apiOption = app.add_option("--kube-api", flags.server.url, what + " from this Kubernetes API server (https://host:port)");
  app.add_option("--kube-ca", flags.server.caFile, "CA bundle of --kube-api")->needs(flags.apiOption);
  app.add_option("--kube-token", flags.server.tokenFile, "bearer token file for --kube-api")->needs(flags.apiOption);
  flags.inClusterOption->excludes(flags.apiOption);
}

}  // namespace sluice::kube
