// sluice-controller: Sluice's control plane.
//
//   sluice-controller serve (--config-dir DIR | --kubernetes | --kube-api URL --kube-ca FILE [--kube-token FILE])
//                           [--listen 0.0.0.0:15010] [--status 127.0.0.1:15014]
//                           (with --ca-dir: no plaintext discovery unless --listen names a loopback address)
//                           [--ca-dir DIR --secure-listen 0.0.0.0:15012 --trust-domain cluster.local]
//       watch DIR (every 300 ms) and push every accepted change to the nodes over the gRPC
//       discovery stream; a refused change keeps the last good configuration in force.
//       With --ca-dir, also the mesh's CA: discovery and workload certificates on the mTLS
//       port (Istio's 15012), where each node authenticates with its node credential.
//       GET /debug/nodes on --status: per node what was sent, acknowledged or refused.
//       --kubernetes: the configuration comes from the Kubernetes API instead (pods become
//       Workloads; Services; Istio's kinds), listed and watched with the pod's service account
//       (--kube-api/--kube-ca/--kube-token: another API server); GET /debug/kubernetes.
//   sluice-controller node-credential --ca-dir DIR --node NAME --out DIR [--validity-s 86400]
//       a node's credential (node-key.pem 0600, node-cert.pem, root-cert.pem): how a node
//       proves who it is on the mTLS port. Copy the folder to that node only. It is short-lived:
//       the node's tunnel renews it over mTLS at half of its lifetime (each renewal lasts
//       serve's --node-credential-validity-s), so a node down for longer needs a new one.
//   sluice-controller revoke-node --ca-dir DIR --node NAME
//       from now on every credential of NAME issued so far is refused (discovery, certificates,
//       renewal; its open discovery streams are cancelled); a running controller reads the
//       change within a second. Re-admit the node with a new node-credential.
//   sluice-controller certificate --ca-dir DIR --spiffe-id spiffe://<td>/... --out DIR
//       a key and certificate for any identity of the trust domain (interop clients, debugging).
//   sluice-controller analyze DIR [--strict]   lint a configuration directory; exit 1 when a
//                                             file is refused or an error is found (with
//                                             --strict, also on warnings)
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <map>
#include <filesystem>
#include <thread>


#include "analyze/analyzer.h"
#include "ca/certificate_service.h"
#include "sluice/common/pki.h"
#include "config/config_loader.h"
#include "discovery/discovery_server.h"
#include "discovery/listen_policy.h"
#include "kubernetes/kube_config_source.h"
#include "sluice/common/process.h"
#include "sluice/common/files.h"
#include "sluice/common/k8s_names.h"
#include "sluice/common/unique_fd.h"
#include "sluice/kube/api_server_flags.h"
#include "sluice/common/http_server.h"
#include "sluice/common/log.h"

namespace {

using namespace sluice::controller;

struct CaOptions {
  std::string dir, trustDomain = "cluster.local", secureListen = "0.0.0.0:15012";
  int validitySeconds = 86400;
  int nodeCredentialValiditySeconds = 86400;
};

// mTLS for the secure port: the controller's certificate (issued by its own CA at each start,
// named kControllerServerName) and client certificates required and verified against the root.
sluice::Result<std::shared_ptr<grpc::ServerCredentials>> secureCredentials(const CertificateAuthority& ca) {
  auto serving = ca.issueKeyPair({"URI:spiffe://" + ca.trustDomain() + "/sluice/controller",
                                  std::string("DNS:") + kControllerServerName},
                                 std::chrono::hours(24 * 365));
  if (!serving) return sluice::fail(std::move(serving.error()));
  grpc::SslServerCredentialsOptions options(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = ca.rootCertificatePem();
  options.pem_key_cert_pairs.push_back({serving->privateKeyPem, serving->certificate.certificatePem});
  return grpc::SslServerCredentials(options);
}

// Writes <prefix>key.pem (0600), <prefix>cert.pem and root-cert.pem for `spiffeId` into `out`.
int issueCredential(const CaOptions& caOptions, const std::string& spiffeId, const std::string& out,
                    std::chrono::seconds validity, const std::string& prefix) {
  auto ca = CertificateAuthority::openOrCreate(caOptions.dir, caOptions.trustDomain);
  if (!ca) {
    spdlog::error("{}", ca.error().message());
    return 1;
  }
  auto pair = (*ca)->issueKeyPair({"URI:" + spiffeId}, validity);
  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  sluice::Status written = pair ? sluice::Status{} : sluice::Status(std::unexpected(pair.error()));
  if (written) written = sluice::pki::writeFileAtomically(out + "/" + prefix + "key.pem", pair->privateKeyPem, 0600);
  if (written) written = sluice::pki::writeFileAtomically(out + "/" + prefix + "cert.pem", pair->certificate.certificatePem, 0644);
  if (written) written = sluice::pki::writeFileAtomically(out + "/root-cert.pem", (*ca)->rootCertificatePem(), 0644);
  if (!written) {
    spdlog::error("credential for {}: {}", spiffeId, written.error().message());
    return 1;
  }
  spdlog::info("credential for {} in {} (serial {})", spiffeId, out, pair->certificate.serialHex);
  return 0;
}

// Adds `node` to the CA folder's revocation list (atomically; a list that cannot be read is
// left as it is and reported).
int revokeNode(const std::string& caDir, const std::string& node) {
  if (!std::filesystem::is_directory(caDir)) {
    spdlog::error("--ca-dir {}: not a folder", caDir);
    return 1;
  }
  // Two revocations at once must not lose one: read-modify-write under a lock.
  sluice::UniqueFd lock(::open((caDir + "/.revocations.lock").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600));
  if (!lock || ::flock(lock.get(), LOCK_EX) != 0) {
    spdlog::error("revoke node {}: lock {}: {}", node, caDir, std::strerror(errno));
    return 1;
  }
  RevocationFile file(revocationFileIn(caDir));
  auto now = std::chrono::system_clock::now();
  auto written = file.load();
  if (written) written = sluice::writeFileAtomically(file.path(), file.current()->with(node, now).serialize(), 0644);
  if (!written) {
    spdlog::error("revoke node {}: {}", node, written.error().message());
    return 1;
  }
  spdlog::info("node {} revoked: every credential issued to it until now is refused ({})", node, file.path());
  return 0;
}

// Where the configuration comes from: a YAML directory, or the Kubernetes API.
struct SourceOptions {
  std::string dir;
  sluice::kube::ApiServerFlags api;
};

int serve(const SourceOptions& source, const std::string& listen, const std::string& statusAddress, const CaOptions& caOptions) {
  const std::string& dir = source.dir;
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ConfigStore store;
  std::unique_ptr<sluice::controller::kube::KubernetesSource> kubernetes;
  auto apiServer = sluice::kube::chosenApiServer(source.api.inCluster, source.api.server, sluice::environmentVariables());
  if (!apiServer) {
    spdlog::error("{}", apiServer.error().message());
    return 1;
  }
  if (*apiServer) {
    kubernetes = std::make_unique<sluice::controller::kube::KubernetesSource>(**apiServer, store);
    kubernetes->start();
  } else {
    store.refresh(dir);
    if (!store.lastError().empty()) {
      spdlog::error("the first load of {} was refused; serving an empty configuration until it is fixed", dir);
    }
  }
  // With the CA, the revoked nodes (read before anything is served: a list that cannot be read
  // stops the start rather than lift revocations).
  std::unique_ptr<RevocationFile> revocations;
  if (!caOptions.dir.empty()) {
    revocations = std::make_unique<RevocationFile>(revocationFileIn(caOptions.dir));
    if (auto loaded = revocations->load(); !loaded) {
      spdlog::error("revoked nodes: {}", loaded.error().message());
      return 1;
    }
  }
  DiscoveryServer discovery(store, caOptions.trustDomain, {}, revocations.get());
  grpc::ServerBuilder builder;
  // The synchronous server holds a thread per call: as many as the discovery streams it takes,
  // and a few for certificate calls, never unbounded.
  grpc::ResourceQuota quota("sluice-controller");
  quota.SetMaxThreads(static_cast<int>(discovery.limits().maxStreams) + 32);
  builder.SetResourceQuota(quota);
  int port = 0, securePort = 0;
  if (!listen.empty()) builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&discovery);
  std::unique_ptr<CertificateAuthority> ca;
  std::unique_ptr<CertificateService> certificates;
  if (!caOptions.dir.empty()) {
    auto opened = CertificateAuthority::openOrCreate(caOptions.dir, caOptions.trustDomain);
    auto credentials = opened ? secureCredentials(**opened) : sluice::fail(opened.error());
    if (!credentials) {
      spdlog::error("certificate authority: {}", credentials.error().message());
      return 1;
    }
    ca = std::move(*opened);
    CertificatePolicy policy;
    policy.defaultValidity = policy.maxValidity = std::chrono::seconds(caOptions.validitySeconds);
    policy.minValidity = std::min(policy.minValidity, policy.maxValidity);
    policy.nodeCredentialValidity = std::chrono::seconds(caOptions.nodeCredentialValiditySeconds);
    certificates = std::make_unique<CertificateService>(*ca, store, policy, revocations.get());
    builder.AddListeningPort(caOptions.secureListen, *credentials, &securePort);
    builder.RegisterService(certificates.get());
  }
  auto server = builder.BuildAndStart();
  if (!server || (!listen.empty() && port == 0) || (ca && securePort == 0)) {
    spdlog::error("cannot listen on {} {}", listen, ca ? caOptions.secureListen : "");
    return 1;
  }
  sluice::HttpServer http;
  auto status = http.listen(statusAddress, {{"/debug/nodes", [&] {
                                               nlohmann::json j{{"lastError", store.lastError()}, {"nodes", nlohmann::json::array()}};
                                               uint64_t generation = 0;
                                               store.current(&generation);
                                               j["generation"] = generation;
                                               for (const auto& n : discovery.nodes()) {
                                                 j["nodes"].push_back({{"node", n.node}, {"connected", n.connected}, {"streams", n.streams},
                                                                       {"sentGeneration", n.sentGeneration},
                                                                       {"ackedGeneration", n.ackedGeneration},
                                                                       {"responses", n.responses}, {"acks", n.acks},
                                                                       {"nacks", n.nacks}, {"bytesSent", n.bytesSent},
                                                                       {"lastNack", n.lastNack}});
                                               }
                                               return sluice::HttpResponse{200, "application/json", j.dump(2)};
                                             }},
                                            {"/debug/kubernetes", [&] {
                                               if (!kubernetes) return sluice::HttpResponse{404, "text/plain", "not watching Kubernetes\n"};
                                               return sluice::HttpResponse{200, "application/json", kubernetes->status().dump(2)};
                                             }}});
  if (!status) {
    spdlog::error("status endpoint: {}", status.error().message());
    return 1;
  }
  http.start();
  spdlog::info("serving {} on {}{} (status on {})", kubernetes ? "the Kubernetes API" : dir, listen.empty() ? "(no plaintext port)" : listen,
               ca ? " and mTLS " + caOptions.secureListen + ", trust domain " + caOptions.trustDomain : "", statusAddress);
  std::atomic<bool> stopping{false};
  std::thread watcher([&] {
    while (!stopping) {
      if (!kubernetes) store.refresh(dir);
      if (revocations) revocations->refresh();
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
  });
  int sig = 0;
  sigwait(&signals, &sig);
  stopping = true;
  watcher.join();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  http.stop();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  sluice::initLogging("sluice-controller");
  CLI::App app{"Sluice controller"};
  app.require_subcommand(1);
  std::string listen = "0.0.0.0:15010", statusAddress = "127.0.0.1:15014";
  auto* serveCmd = app.add_subcommand("serve", "push the configuration directory to every node");
  SourceOptions source;
  auto* dirOption = serveCmd->add_option("--config-dir", source.dir, "directory of YAML files");
  sluice::kube::addApiServerFlags(*serveCmd, source.api, "configuration");
  dirOption->excludes(source.api.inClusterOption)->excludes(source.api.apiOption);
  auto* listenOption = serveCmd->add_option("--listen", listen, "plaintext gRPC discovery address (with --ca-dir: off unless given, loopback only)")
                           ->capture_default_str();
  serveCmd->add_option("--status", statusAddress, "HTTP status address (keep it on loopback)")->capture_default_str();
  CaOptions caOptions;
  serveCmd->add_option("--ca-dir", caOptions.dir, "CA root folder (created on first start); enables the mTLS port");
  serveCmd->add_option("--secure-listen", caOptions.secureListen, "mTLS address: discovery + certificates")->capture_default_str();
  serveCmd->add_option("--trust-domain", caOptions.trustDomain)->capture_default_str();
  serveCmd->add_option("--certificate-validity-s", caOptions.validitySeconds, "workload certificate lifetime (default and maximum)")
      ->check(CLI::Range(10, 86400 * 90))->capture_default_str();
  serveCmd->add_option("--node-credential-validity-s", caOptions.nodeCredentialValiditySeconds,
                       "lifetime of a renewed node credential (nodes renew at half of it)")
      ->check(CLI::Range(10, 86400 * 30))->capture_default_str();
  std::string node, out;
  int nodeValiditySeconds = 86400;
  auto* credentialCmd = app.add_subcommand("node-credential", "issue a node's credential for the mTLS port");
  credentialCmd->add_option("--ca-dir", caOptions.dir, "CA root folder (created when absent)")->required();
  credentialCmd->add_option("--trust-domain", caOptions.trustDomain)->capture_default_str();
  credentialCmd->add_option("--node", node, "the node's name")->required();
  credentialCmd->add_option("--out", out, "folder to write node-key.pem, node-cert.pem, root-cert.pem")->required();
  credentialCmd->add_option("--validity-s", nodeValiditySeconds, "lifetime until the node's first renewal")
      ->check(CLI::Range(10, 86400 * 30))->capture_default_str();
  auto* revokeCmd = app.add_subcommand("revoke-node", "refuse every credential of a node issued so far");
  revokeCmd->add_option("--ca-dir", caOptions.dir, "CA root folder")->required();
  revokeCmd->add_option("--node", node, "the node's name")->required();
  std::string spiffeId;
  int certificateValidityS = 86400;
  auto* certificateCmd = app.add_subcommand(
      "certificate", "issue a key and certificate for any identity of the trust domain (interop clients, debugging)");
  certificateCmd->add_option("--ca-dir", caOptions.dir, "CA root folder (created when absent)")->required();
  certificateCmd->add_option("--trust-domain", caOptions.trustDomain)->capture_default_str();
  certificateCmd->add_option("--spiffe-id", spiffeId, "spiffe://<trust-domain>/...")->required();
  certificateCmd->add_option("--out", out, "folder to write key.pem, cert.pem, root-cert.pem")->required();
  certificateCmd->add_option("--validity-s", certificateValidityS)->check(CLI::Range(10, 86400 * 365))->capture_default_str();
  std::string dir;
  bool strict = false;
  auto* analyzeCmd = app.add_subcommand("analyze", "find problems in a configuration directory");
  analyzeCmd->add_option("dir", dir, "directory of YAML files")->required();
  analyzeCmd->add_flag("--strict", strict, "fail on warnings too");
  const sluice::ProcessRequirements requirements{.program = "sluice-controller", .capabilities = {}, .hostPaths = {},
                                                 .apiResources = sluice::controller::kube::meshApiResources()};
  // A callback that ends parsing (as --help does), so no subcommand is needed.
  app.add_flag_callback(
      "--print-requirements", [&] { sluice::printRequirements(requirements); throw CLI::Success(); },
      "print the capabilities, host folders and Kubernetes resources this program needs (JSON) and exit");
  CLI11_PARSE(app, argc, argv);
  if (serveCmd->parsed()) {
    auto plaintext = sluice::controller::plaintextDiscoveryAddress(listen, listenOption->count() > 0, !caOptions.dir.empty());
    if (!plaintext) {
      spdlog::error("{}", plaintext.error().message());
      return 1;
    }
    if (source.dir.empty() && !source.api.inCluster && source.api.server.url.empty()) {
      spdlog::error("serve needs a configuration source: --config-dir DIR, --kubernetes or --kube-api URL");
      return 1;
    }
    return serve(source, *plaintext, statusAddress, caOptions);
  }
  if ((credentialCmd->parsed() || revokeCmd->parsed()) && !sluice::isDnsSubdomain(node)) {
    spdlog::error("--node '{}': a node name must be a DNS-1123 subdomain (lowercase letters, digits, '-', '.')", node);
    return 1;
  }
  if (credentialCmd->parsed()) {
    return issueCredential(caOptions, nodeIdentityFor(caOptions.trustDomain, node), out,
                           std::chrono::seconds(nodeValiditySeconds), "node-");
  }
  if (revokeCmd->parsed()) return revokeNode(caOptions.dir, node);
  if (certificateCmd->parsed()) {
    if (spiffeId.rfind("spiffe://" + caOptions.trustDomain + "/", 0) != 0) {
      spdlog::error("--spiffe-id '{}' is not an identity of trust domain {}", spiffeId, caOptions.trustDomain);
      return 1;
    }
    return issueCredential(caOptions, spiffeId, out, std::chrono::seconds(certificateValidityS), "");
  }

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
