// sluice-cni's understanding of one CNI invocation (CNI spec 1.0): the CNI_* environment and
// the network configuration on stdin, validated into a request for the agent. Pure, so every
// malformed input has a test; the main function only does I/O.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <string>

#include "sluice/common/error.h"

namespace sluice::cni {

// CNI spec error codes used by sluice-cni.
enum CniErrorCode {
  kIncompatibleVersion = 1,
  kInvalidEnvironment = 4,
  kDecodeFailure = 6,
  kInvalidNetworkConfig = 7,
  kTryAgainLater = 11,
  kEnrollmentRefused = 100,  // plugin-specific: the agent refused the pod
};

struct CniFailure {
  int code;
  std::string msg;
  std::string details;
};

inline constexpr size_t kMaxNetconfBytes = 1 << 20;
inline constexpr const char* kDefaultAgentSocket = "/run/sluice/agent.sock";

struct CniInvocation {
  std::string command;  // ADD, DEL, CHECK, VERSION
  std::string containerId, netns, ifName;
  std::map<std::string, std::string> args;  // CNI_ARGS, "K=V;K=V"
  std::string cniVersion;
  std::string agentSocket = kDefaultAgentSocket;
  int timeoutSeconds = 30;
  nlohmann::json prevResult;  // null when absent
};

std::expected<CniInvocation, CniFailure> parseInvocation(const std::map<std::string, std::string>& env,
                                                         std::string_view stdinText);

// The request line for the agent's control socket.
nlohmann::json agentRequest(const CniInvocation& inv);

// Addresses prevResult assigned to the sandbox's interface (without prefix length).
std::vector<std::string> sandboxAddresses(const nlohmann::json& prevResult, const std::string& ifName);

nlohmann::json errorJson(const std::string& cniVersion, const CniFailure& failure);
nlohmann::json versionJson();

}  // namespace sluice::cni
