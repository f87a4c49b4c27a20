// The CA's gRPC face (proto/sluice/ca/v1): served only on the controller's mTLS port. The
// caller is the node its client certificate names (spiffe://<td>/sluice/node/<name>); it gets a
// certificate only for an identity of a workload the current configuration places on that
// node. Refusals carry the reason: PERMISSION_DENIED for identities the node may not have,
// UNAUTHENTICATED without a node certificate, INVALID_ARGUMENT for a bad CSR. A node whose
// credential is revoked (discovery/node_revocations.h) gets nothing: PERMISSION_DENIED.
#pragma once

#include <atomic>
#include <chrono>

#include "ca/certificate_authority.h"
#include "discovery/config_store.h"
#include "discovery/node_identity.h"
#include "discovery/node_revocations.h"
#include "sluice/ca/v1/ca.grpc.pb.h"

namespace sluice::controller {

struct CertificatePolicy {
  std::chrono::seconds defaultValidity{std::chrono::hours(24)};
  std::chrono::seconds maxValidity{std::chrono::hours(24)};
  std::chrono::seconds minValidity{std::chrono::minutes(1)};
  // A renewed node credential's lifetime (the node renews at half of it).
  std::chrono::seconds nodeCredentialValidity{std::chrono::hours(24)};
};

class CertificateService final : public ca::v1::CertificateService::Service {
 public:
  // `revocations`: none means no node is revoked.
  CertificateService(const CertificateAuthority& ca, const ConfigStore& store, CertificatePolicy policy,
                     const RevocationFile* revocations = nullptr)
      : ca_(ca), store_(store), policy_(policy), revocations_(revocations) {}
  grpc::Status CreateCertificate(grpc::ServerContext* context, const ca::v1::CertificateRequest* request,
                                 ca::v1::CertificateResponse* response) override;
  grpc::Status RenewNodeCredential(grpc::ServerContext* context, const ca::v1::NodeCredentialRequest* request,
                                   ca::v1::CertificateResponse* response) override;
  uint64_t issued() const { return issued_.load(); }
  uint64_t refused() const { return refused_.load(); }

 private:
  const CertificateAuthority& ca_;
  const ConfigStore& store_;
  // The calling node, or the refusal: no node certificate, or a revoked one.
  Result<std::string> callingNode(const grpc::ServerContext& context, grpc::StatusCode* code) const;
  grpc::Status refuse(grpc::StatusCode code, const std::string& identity, const std::string& why);
  static void fill(const IssuedCertificate& issued, const std::string& root, ca::v1::CertificateResponse* response);

  CertificatePolicy policy_;
  const RevocationFile* revocations_;
  std::atomic<uint64_t> issued_{0}, refused_{0};
};

}  // namespace sluice::controller
