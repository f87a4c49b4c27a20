#include "ca/certificate_service.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace sluice::controller {

grpc::Status CertificateService::refuse(grpc::StatusCode code, const std::string& identity, const std::string& why) {
  ++refused_;
  // An identity no workload has yet is the usual race at a pod's start (the node's tunnel
  // asks again): worth a line, not a warning. Everything else is.
  bool notYet = why.find("(no known workload has it yet)") != std::string::npos;
  spdlog::log(notYet ? spdlog::level::info : spdlog::level::warn, "certificate for {} refused: {}", identity, why);
  return grpc::Status(code, why);
}

Result<std::string> CertificateService::callingNode(const grpc::ServerContext& context, grpc::StatusCode* code) const {
  auto caller = authenticatedCaller(context, ca_.trustDomain());
  *code = grpc::StatusCode::UNAUTHENTICATED;
  if (!caller) return fail("the caller presented no node certificate of this trust domain");
  *code = grpc::StatusCode::PERMISSION_DENIED;
  if (revocations_) {
    if (auto ok = revocations_->current()->check(caller->node, caller->issuedAt); !ok) return fail(std::move(ok.error()));
  }
  return caller->node;
}

void CertificateService::fill(const IssuedCertificate& issued, const std::string& root, ca::v1::CertificateResponse* response) {
  response->add_cert_chain(issued.certificatePem);
  response->set_root_cert(root);
  response->set_serial(issued.serialHex);
  response->set_not_after_unix(std::chrono::duration_cast<std::chrono::seconds>(issued.notAfter.time_since_epoch()).count());
}

grpc::Status CertificateService::CreateCertificate(grpc::ServerContext* context, const ca::v1::CertificateRequest* request,
                                                   ca::v1::CertificateResponse* response) {
  grpc::StatusCode code{};
  auto node = callingNode(*context, &code);
  if (!node) return refuse(code, request->identity(), node.error().message());
  auto config = store_.current();
  if (auto allowed = identityAllowedForNode(*config, ca_.trustDomain(), *node, request->identity()); !allowed) {
    return refuse(grpc::StatusCode::PERMISSION_DENIED, request->identity(), allowed.error().message());
  }
  std::chrono::seconds validity = request->validity_seconds() > 0 ? std::chrono::seconds(request->validity_seconds())
                                                                  : policy_.defaultValidity;
  validity = std::clamp(validity, policy_.minValidity, policy_.maxValidity);
  auto issued = ca_.sign(request->csr(), request->identity(), validity, *node);
  if (!issued) return refuse(grpc::StatusCode::INVALID_ARGUMENT, request->identity(), issued.error().message());
  fill(*issued, ca_.rootCertificatePem(), response);
  ++issued_;
  spdlog::info("issued {} to node {} (serial {}, {} s)", request->identity(), *node, issued->serialHex, validity.count());
  return grpc::Status::OK;
}

grpc::Status CertificateService::RenewNodeCredential(grpc::ServerContext* context, const ca::v1::NodeCredentialRequest* request,
                                                     ca::v1::CertificateResponse* response) {
  grpc::StatusCode code{};
  auto node = callingNode(*context, &code);
  if (!node) return refuse(code, "a node credential", node.error().message());
  // Only the caller's own identity: sign() refuses a CSR that asks for anything else.
  std::string identity = nodeIdentityFor(ca_.trustDomain(), *node);
  auto issued = ca_.sign(request->csr(), identity, policy_.nodeCredentialValidity);
  if (!issued) return refuse(grpc::StatusCode::INVALID_ARGUMENT, identity, issued.error().message());
  fill(*issued, ca_.rootCertificatePem(), response);
  ++issued_;
  spdlog::info("renewed the credential of node {} (serial {}, {} s)", *node, issued->serialHex,
               policy_.nodeCredentialValidity.count());
  return grpc::Status::OK;
}

}  // namespace sluice::controller
