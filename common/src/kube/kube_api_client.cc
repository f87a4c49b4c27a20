#include "sluice/kube/kube_api_client.h"

#include <curl/curl.h>

#include <fmt/format.h>

#include <memory>
#include <mutex>

#include "sluice/kube/watch_protocol.h"
#include "sluice/common/files.h"

namespace sluice::kube {

namespace {

void globalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

// State of one transfer, reached from libcurl's callbacks.
struct Transfer {
  std::string buffer;  // get(): the body; stream(): the bytes after the last newline
  bool streaming = false;
  long status = 0;
  CURL* curl = nullptr;
  const std::function<bool(std::string_view)>* onLine = nullptr;
  const std::atomic<bool>* stop = nullptr;
  std::string failure;  // why a callback ended the transfer
};

size_t onData(char* data, size_t size, size_t count, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  size_t n = size * count;
  if (t.status == 0) curl_easy_getinfo(t.curl, CURLINFO_RESPONSE_CODE, &t.status);
  // A non-200 answer to a watch is read whole (it is a Status), as is every get().
  if (!t.streaming || t.status != 200) {
    if (t.buffer.size() + n > kMaxMessageBytes) {
      t.failure = "response larger than 8 MiB";
      return 0;
    }
    t.buffer.append(data, n);
    return n;
  }
  t.buffer.append(data, n);
  size_t start = 0;
  for (size_t nl; (nl = t.buffer.find('\n', start)) != std::string::npos; start = nl + 1) {
    std::string_view line(t.buffer.data() + start, nl - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    if (!(*t.onLine)(line)) {
      t.failure = "stopped by the reader";
      return 0;
    }
  }
  t.buffer.erase(0, start);
  if (t.buffer.size() > kMaxMessageBytes) {
    t.failure = "watch line longer than 8 MiB";
    return 0;
  }
  return n;
}

int onProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto& t = *static_cast<Transfer*>(user);
  return t.stop != nullptr && t.stop->load() ? 1 : 0;  // non-zero aborts the transfer
}

}  // namespace

Result<ApiServer> inClusterApiServer(const std::map<std::string, std::string>& env, const std::string& accountDir) {
  auto host = env.find("KUBERNETES_SERVICE_HOST");
  auto port = env.find("KUBERNETES_SERVICE_PORT");
  if (host == env.end() || host->second.empty() || port == env.end() || port->second.empty()) {
    return fail("not in a Kubernetes pod: KUBERNETES_SERVICE_HOST/PORT are not set");
  }
  bool v6 = host->second.find(':') != std::string::npos;
  return ApiServer{.url = fmt::format("https://{}{}{}:{}", v6 ? "[" : "", host->second, v6 ? "]" : "", port->second),
                   .caFile = accountDir + "/ca.crt",
                   .tokenFile = accountDir + "/token"};
}

Result<std::optional<ApiServer>> chosenApiServer(bool inCluster, const ApiServer& given,
                                                 const std::map<std::string, std::string>& env) {
  if (inCluster) {
    auto server = inClusterApiServer(env);
    if (!server) return fail(std::move(server.error()).context("--kubernetes"));
    return std::optional<ApiServer>(std::move(*server));
  }
  if (given.url.empty()) return std::optional<ApiServer>();
  if (given.caFile.empty()) return fail("--kube-api needs --kube-ca (the API server's certificate is always verified)");
  return std::optional<ApiServer>(given);
}

KubeApiClient::KubeApiClient(ApiServer server) : server_(std::move(server)) { globalInit(); }

namespace {

Result<HttpResult> perform(const ApiServer& server, const std::string& pathAndQuery, Transfer& t, std::chrono::seconds timeout,
                           std::chrono::seconds idleLimit) {
  if (server.url.rfind("https://", 0) != 0) return fail("API server address must be https://: " + server.url);
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (!curl) return fail("curl_easy_init failed");
  std::unique_ptr<curl_slist, SlistDeleter> headers(curl_slist_append(nullptr, "Accept: application/json"));
  if (!server.tokenFile.empty()) {
    auto token = readFile(server.tokenFile);
    if (!token) return fail(std::move(token.error()).context("service account token"));
    while (!token->empty() && (token->back() == '\n' || token->back() == '\r')) token->pop_back();
    headers.reset(curl_slist_append(headers.release(), ("Authorization: Bearer " + *token).c_str()));
  }
  std::string url = server.url + pathAndQuery;
  t.curl = curl.get();
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(c, CURLOPT_CAINFO, server.caFile.c_str());
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
  if (timeout.count() > 0) curl_easy_setopt(c, CURLOPT_TIMEOUT, static_cast<long>(timeout.count()));
  // A dead connection (no byte for idleLimit) ends the transfer; bookmarks keep a live watch busy.
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, static_cast<long>(idleLimit.count()));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &onData);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, &onProgress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  CURLcode rc = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &t.status);
  bool stopped = t.stop != nullptr && t.stop->load();
  if (rc != CURLE_OK && !stopped && !(rc == CURLE_WRITE_ERROR && t.failure == "stopped by the reader")) {
    std::string why = t.failure.empty() ? curl_easy_strerror(rc) : t.failure;
    return fail(fmt::format("GET {}: {}", url, why));
  }
  HttpResult result{.status = t.status, .body = {}};
  if (!t.streaming || t.status != 200) result.body = std::move(t.buffer);
  return result;
}

}  // namespace

Result<HttpResult> KubeApiClient::get(const std::string& pathAndQuery, std::chrono::seconds timeout) const {
  Transfer t;
  return perform(server_, pathAndQuery, t, timeout, timeout);
}

Result<HttpResult> KubeApiClient::stream(const std::string& pathAndQuery, const std::function<bool(std::string_view)>& onLine,
                                         const std::atomic<bool>& stop, std::chrono::seconds idleLimit) const {
  Transfer t;
  t.streaming = true;
  t.onLine = &onLine;
  t.stop = &stop;
  return perform(server_, pathAndQuery, t, std::chrono::seconds(0), idleLimit);
}

}  // namespace sluice::kube
