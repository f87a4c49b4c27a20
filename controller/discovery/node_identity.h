// Who a node is on the controller's mTLS port: the node credential's URI SAN
// spiffe://<trust-domain>/sluice/node/<name> (issued by `sluice-controller node-credential`).
#pragma once

#include <grpcpp/server_context.h>

#include <chrono>
#include <optional>
#include <string>

namespace sluice::controller {

std::string nodeIdentityFor(const std::string& trustDomain, const std::string& node);
// The node named by `spiffeId` when it is a node identity of `trustDomain`; "" otherwise.
std::string nodeFromIdentity(const std::string& trustDomain, const std::string& spiffeId);
// The node a verified peer certificate names, or "" (grpc's peer_spiffe_id property: set only
// for a verified chain with exactly one SPIFFE URI SAN).
std::string authenticatedNode(const grpc::ServerContext& context, const std::string& trustDomain);

// A node on the mTLS port: who it is and when the credential it presented was issued (what a
// revocation is compared with).
struct NodeCaller {
  std::string node;
  std::chrono::system_clock::time_point issuedAt;
};
// The caller, when it presented a verified node certificate of `trustDomain`; nullopt otherwise.
std::optional<NodeCaller> authenticatedCaller(const grpc::ServerContext& context, const std::string& trustDomain);

}  // namespace sluice::controller
