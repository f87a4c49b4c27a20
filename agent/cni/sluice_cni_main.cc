// sluice-cni: a chained CNI plugin. The container runtime runs it after the primary plugin
// (which assigned the pod's addresses); it forwards the pod to the node agent and blocks until
// the agent has the pod captured, so an app never starts uncaptured. When the pod can't be
// enrolled, pod creation fails with a CNI error naming why: there is no silent bypass.
//
// Netconf fields: "agentSocket" (default /run/sluice/agent.sock), "timeoutSeconds" (30).
// DEL succeeds even when the agent is unreachable: pod removal must never wedge, and the agent
// removes capture of vanished pods when it starts.
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <map>

#include "cni/cni_invocation.h"
#include "sluice/common/process.h"
#include "sluice/common/unix_socket.h"


namespace {

using namespace sluice;
using namespace sluice::cni;
using nlohmann::json;

int failWith(const std::string& cniVersion, const CniFailure& f) {
  std::cout << errorJson(cniVersion, f).dump() << std::endl;
  return 1;
}

}  // namespace

int main() {
  std::map<std::string, std::string> env = environmentVariables();
  std::string input;
  if (env["CNI_COMMAND"] != "VERSION") {
    char buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), stdin)) > 0) {
      input.append(buf, n);
      if (input.size() > kMaxNetconfBytes) break;
    }
  }
  auto inv = parseInvocation(env, input);
  if (!inv) return failWith("", inv.error());
  if (inv->command == "VERSION") {
    std::cout << versionJson().dump() << std::endl;
    return 0;
  }

  auto timeout = std::chrono::seconds(inv->timeoutSeconds);
  auto conn = connectUnix(inv->agentSocket, SOCK_STREAM);
  if (!conn) {
    if (inv->command == "DEL") return 0;
    return failWith(inv->cniVersion, {kTryAgainLater, "the Sluice node agent is not reachable",
                                      conn.error().message() + " (is sluice-agent running on this node?)"});
  }
  std::string buffer;
  auto sent = writeAll(conn->get(), agentRequest(*inv).dump() + "\n");
  auto line = sent ? readLineFrom(conn->get(), buffer, 1 << 20, timeout) : Result<std::string>(fail(sent.error()));
  if (!line) {
    if (inv->command == "DEL") return 0;
    return failWith(inv->cniVersion, {kTryAgainLater, "no answer from the Sluice node agent", line.error().message()});
  }
  json answer = json::parse(*line, nullptr, false);
  if (answer.is_discarded() || !answer.is_object() || !answer.contains("ok")) {
    return failWith(inv->cniVersion, {kDecodeFailure, "the Sluice node agent answered something unreadable"});
  }
  if (!answer.value("ok", false)) {
    return failWith(inv->cniVersion, {kEnrollmentRefused, "Sluice could not capture the pod's traffic",
                                      answer.value("error", "no reason given")});
  }
  // A chained plugin passes the previous result on unchanged.
  if (inv->command == "ADD") std::cout << inv->prevResult.dump() << std::endl;
  return 0;
}
