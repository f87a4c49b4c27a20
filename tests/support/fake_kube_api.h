// The fake Kubernetes API server (tests/interop/fake_kube_api.py) for the controller's tests:
// a CA and a server certificate for 127.0.0.1 made with openssl, a bearer token, the server
// started on a scenario, and the requests it logged. One per test; removes its folder.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "sluice/kube/kube_api_client.h"
#include "sluice/common/files.h"
#include "sluice/common/process.h"

namespace sluice::kube::testing {

class FakeKubeApi {
 public:
  static constexpr const char* kToken = "secret-token";

  FakeKubeApi() {
    dir_ = std::filesystem::temp_directory_path() /
           ("fake-kube-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    std::filesystem::create_directories(dir_);
    makeCa("ca");
    openssl({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", path("server.key"),
             "-out", path("server.csr"), "-subj", "/CN=kube-apiserver"});
    EXPECT_TRUE(writeFileAtomically(path("san.ext"), "subjectAltName=IP:127.0.0.1\n", 0600));
    openssl({"x509", "-req", "-in", path("server.csr"), "-CA", path("ca.crt"), "-CAkey", path("ca.key"), "-CAcreateserial",
             "-out", path("server.crt"), "-days", "1", "-extfile", path("san.ext")});
    EXPECT_TRUE(writeFileAtomically(path("token"), std::string(kToken) + "\n", 0600));
  }
  ~FakeKubeApi() {
    server_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // A self-signed CA "<name>.crt"/"<name>.key" (another one than the server's, for refusals).
  void makeCa(const std::string& name) {
    openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
             path(name + ".key"), "-out", path(name + ".crt"), "-subj", "/CN=" + name, "-days", "1"});
  }

  // Starts the server on `scenario`; the ApiServer to reach it (CA and token files overridable).
  ApiServer start(const nlohmann::json& scenario, const std::string& caFile = "", bool withToken = true) {
    EXPECT_TRUE(writeFileAtomically(path("scenario.json"), scenario.dump(), 0600));
    auto child = spawn({.argv = {"/usr/bin/python3", SLUICE_SOURCE_DIR "/tests/interop/fake_kube_api.py", "--scenario",
                                 path("scenario.json"), "--log", path("requests.log"), "--cert", path("server.crt"), "--key",
                                 path("server.key"), "--token", kToken},
                        .captureOutput = true});
    if (!child) {
      ADD_FAILURE() << child.error().message();
      return {};
    }
    server_ = std::make_unique<ChildProcess>(std::move(*child));
    auto line = readLine(server_->stdoutPipe(), std::chrono::seconds(10));
    if (!line || line->rfind("listening ", 0) != 0) {
      ADD_FAILURE() << "fake API server did not start: " << (line ? *line : line.error().message());
      return {};
    }
    return ApiServer{.url = "https://127.0.0.1:" + line->substr(10), .caFile = caFile.empty() ? path("ca.crt") : caFile,
                     .tokenFile = withToken ? path("token") : ""};
  }

  // Every request the server received: {"path", "query": {...}, "time"}.
  std::vector<nlohmann::json> requests() const {
    std::vector<nlohmann::json> out;
    std::ifstream in(path("requests.log"));
    for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
    return out;
  }

 private:
  static int& counter() {
    static int n = 0;
    return n;
  }
  void openssl(std::vector<std::string> args) {
    args.insert(args.begin(), "openssl");
    auto out = runChecked({.argv = args, .captureOutput = true});
    EXPECT_TRUE(out) << out.error().message();
  }

  std::filesystem::path dir_;
  std::unique_ptr<ChildProcess> server_;
};

// Polls `done` every 20 ms for up to 10 s.
template <typename Pred>
bool waitUntil(Pred done) {
  for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10); std::chrono::steady_clock::now() < until;) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return done();
}

}  // namespace sluice::kube::testing
