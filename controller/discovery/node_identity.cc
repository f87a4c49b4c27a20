#include "discovery/node_identity.h"

#include <fmt/format.h>
#include <grpc/grpc_security_constants.h>

#include "sluice/common/pki.h"

namespace sluice::controller {

std::string nodeIdentityFor(const std::string& trustDomain, const std::string& node) {
  return fmt::format("spiffe://{}/sluice/node/{}", trustDomain, node);
}

std::string nodeFromIdentity(const std::string& trustDomain, const std::string& spiffeId) {
  std::string prefix = nodeIdentityFor(trustDomain, "");
  if (spiffeId.size() <= prefix.size() || spiffeId.compare(0, prefix.size(), prefix) != 0) return {};
  std::string node = spiffeId.substr(prefix.size());
  return node.find('/') == std::string::npos ? node : std::string();
}

std::string authenticatedNode(const grpc::ServerContext& context, const std::string& trustDomain) {
  auto auth = context.auth_context();
  if (!auth || !auth->IsPeerAuthenticated()) return {};
  auto ids = auth->FindPropertyValues(GRPC_PEER_SPIFFE_ID_PROPERTY_NAME);
  if (ids.size() != 1) return {};
  return nodeFromIdentity(trustDomain, std::string(ids[0].data(), ids[0].size()));
}

std::optional<NodeCaller> authenticatedCaller(const grpc::ServerContext& context, const std::string& trustDomain) {
  std::string node = authenticatedNode(context, trustDomain);
  if (node.empty()) return std::nullopt;
  // grpc exposes the verified leaf as PEM; its notBefore dates the credential.
  auto pems = context.auth_context()->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
  if (pems.size() != 1) return std::nullopt;
  auto leaf = pki::parseCertificate(std::string_view(pems[0].data(), pems[0].size()));
  if (!leaf) return std::nullopt;
  return NodeCaller{std::move(node), pki::notBefore(leaf->get()) + pki::kNotBeforeBackdate};
}

}  // namespace sluice::controller
