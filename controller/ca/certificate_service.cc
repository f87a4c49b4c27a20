#include "ca/certificate_service.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace sluice::controller {

grpc::Status CertificateService::CreateCertificate(grpc::ServerContext* context, const ca::v1::CertificateRequest* request,
                                                   ca::v1::CertificateResponse* response) {
  auto refuse = [&](grpc::StatusCode code, const std::string& why) {
    ++refused_;
    // An identity no workload has yet is the usual race at a pod's start (the node's tunnel
    // asks again): worth a line, not a warning. Everything else is.
    bool notYet = why.find("(no known workload has it yet)") != std::string::npos;
    spdlog::log(notYet ? spdlog::level::info : spdlog::level::warn, "certificate for {} refused: {}", request->identity(), why);
    return grpc::Status(code, why);
  };
  std::string node = authenticatedNode(*context, ca_.trustDomain());
  if (node.empty()) return refuse(grpc::StatusCode::UNAUTHENTICATED, "the caller presented no node certificate of this trust domain");
  auto config = store_.current();
  if (auto allowed = identityAllowedForNode(*config, ca_.trustDomain(), node, request->identity()); !allowed) {
    return refuse(grpc::StatusCode::PERMISSION_DENIED, allowed.error().message());
  }
  std::chrono::seconds validity = request->validity_seconds() > 0 ? std::chrono::seconds(request->validity_seconds())
                                                                  : policy_.defaultValidity;
  validity = std::clamp(validity, policy_.minValidity, policy_.maxValidity);
  auto issued = ca_.sign(request->csr(), request->identity(), validity);
  if (!issued) return refuse(grpc::StatusCode::INVALID_ARGUMENT, issued.error().message());
  response->add_cert_chain(issued->certificatePem);
  response->set_root_cert(ca_.rootCertificatePem());
  response->set_serial(issued->serialHex);
  response->set_not_after_unix(std::chrono::duration_cast<std::chrono::seconds>(issued->notAfter.time_since_epoch()).count());
  ++issued_;
  spdlog::info("issued {} to node {} (serial {}, {} s)", request->identity(), node, issued->serialHex, validity.count());
  return grpc::Status::OK;
}

}  // namespace sluice::controller
