// The mesh's certificate authority (issue 6 groundwork): signs workload certificates for SPIFFE
// identities spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>.
//
// The root key and certificate (ECDSA P-256) live in a folder: created on first start (key
// file 0600), loaded afterwards, so every restart signs with the same root. A CSR is only a
// carrier for the public key: the CA checks its self-signature and that it asks for exactly the
// identity the caller is entitled to, then issues a certificate whose only SAN is that URI,
// usable for TLS client and server authentication, valid for `validity` (default 24 h).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <openssl/evp.h>

#include "config/config_loader.h"
#include "sluice/common/pki.h"
#include "sluice/common/error.h"

namespace sluice::controller {

struct IssuedCertificate {
  std::string certificatePem;
  std::string serialHex;
  std::chrono::system_clock::time_point notAfter;
};

// A key pair made by the CA itself: node credentials and the controller's serving certificate
// (a workload's key, in contrast, is made on its node and never leaves it).
struct IssuedKeyPair {
  std::string privateKeyPem;
  IssuedCertificate certificate;
};

// The DNS name in the controller's serving certificate, which nodes verify.
inline constexpr const char* kControllerServerName = "sluice-controller";

class CertificateAuthority {
 public:
  // Loads the root from `dir` (root-key.pem, root-cert.pem), creating both when absent.
  static Result<std::unique_ptr<CertificateAuthority>> openOrCreate(const std::string& dir, const std::string& trustDomain);
  ~CertificateAuthority();

  const std::string& rootCertificatePem() const { return rootPem_; }
  const std::string& trustDomain() const { return trustDomain_; }

  // Signs `csrPem` for `spiffeId` (which the caller has already authorised; see
  // identityAllowedForNode). Refuses a CSR whose signature is bad, whose key is not ECDSA
  // P-256, or which asks for any other identity.
  // `issuedTo`: the node the certificate is for, recorded in it (pki::issuedToNode) so a
  // revocation of that node reaches it; "" records none.
  Result<IssuedCertificate> sign(const std::string& csrPem, const std::string& spiffeId,
                                 std::chrono::seconds validity = std::chrono::hours(24), const std::string& issuedTo = "") const;

  // A new P-256 key and a certificate for it with the given subjectAltNames ("URI:...",
  // "DNS:..."), usable for TLS client and server authentication.
  Result<IssuedKeyPair> issueKeyPair(const std::vector<std::string>& subjectAltNames, std::chrono::seconds validity) const;

 private:
  CertificateAuthority() = default;
  Result<IssuedCertificate> issue(EVP_PKEY* publicKey, const std::string& subjectAltNames, std::chrono::seconds validity,
                                  const std::string& issuedTo = "") const;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string rootPem_, trustDomain_;
};

// "spiffe://<td>/ns/<ns>/sa/<sa>" for a workload.
using pki::spiffeIdFor;

// Whether `node` may obtain a certificate for `spiffeId`: only when a workload with that
// namespace and service account runs on that node (a compromised node can't mint identities
// of workloads it doesn't host). Fails with the reason.
Status identityAllowedForNode(const ConfigSet& config, const std::string& trustDomain, const std::string& node,
                              const std::string& spiffeId);

}  // namespace sluice::controller
