// HTTPS GETs to the Kubernetes API server with libcurl: whole responses (lists) and streamed
// ones (watches, line by line). The server's certificate is verified against the cluster CA,
// host name included; the bearer token is read from its file on every request, because
// projected service-account tokens are rotated by the kubelet.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "sluice/common/error.h"

namespace sluice::kube {

struct ApiServer {
  std::string url;        // https://host:port (no path)
  std::string caFile;     // PEM bundle that signs the server's certificate
  std::string tokenFile;  // bearer token; empty: none
};

// In a pod: KUBERNETES_SERVICE_HOST/PORT and the service account's token and CA.
Result<ApiServer> inClusterApiServer(const std::map<std::string, std::string>& env,
                                     const std::string& accountDir = "/var/run/secrets/kubernetes.io/serviceaccount");

// The API server a program was told to use: in-cluster (`inCluster`), `given` (its url set), or
// none (nullopt). Fails naming what is missing: the pod's environment, or --kube-ca for a given
// server (its certificate is always verified).
Result<std::optional<ApiServer>> chosenApiServer(bool inCluster, const ApiServer& given,
                                                 const std::map<std::string, std::string>& env);

struct HttpResult {
  long status = 0;
  std::string body;  // whole body for get(); for stream(), the body of a non-200 answer
};

class KubeApiClient {
 public:
  explicit KubeApiClient(ApiServer server);

  // GET pathAndQuery; the body whole (at most kMaxMessageBytes). Fails on transport errors only:
  // an HTTP error status is a result for the caller to read.
  Result<HttpResult> get(const std::string& pathAndQuery, std::chrono::seconds timeout) const;

  // GET pathAndQuery and hand each line of a 200 answer to onLine (without the newline) until
  // the server ends the response, onLine returns false, `stop` becomes true, or nothing arrives
  // for `idleLimit`. A line over kMaxMessageBytes fails the call.
  Result<HttpResult> stream(const std::string& pathAndQuery, const std::function<bool(std::string_view)>& onLine,
                            const std::atomic<bool>& stop, std::chrono::seconds idleLimit) const;

  const ApiServer& server() const { return server_; }

 private:
  ApiServer server_;
};

}  // namespace sluice::kube
