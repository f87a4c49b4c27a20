// Small, owning wrappers over OpenSSL for the mesh's PKI: keys, certificates, CSRs and PEM.
// Shared by the controller's CA and the tunnel's certificate manager so both read and write
// the same formats the same way. Every function reports failure as a value with OpenSSL's
// reason; nothing here throws.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/common/error.h"
#include "sluice/common/files.h"

namespace sluice::pki {

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using Key = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using Cert = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using Req = std::unique_ptr<X509_REQ, Deleter<X509_REQ, X509_REQ_free>>;

// A workload's SPIFFE ID: "spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>".
std::string spiffeIdFor(const std::string& trustDomain, const std::string& ns, const std::string& serviceAccount);

// "<what>: <OpenSSL's first queued error>", clearing the thread's error queue.
std::string opensslError(std::string_view what);

Result<Key> generateP256Key();
std::string privateKeyPem(EVP_PKEY* key);
std::string certificatePem(X509* cert);
Result<Key> parsePrivateKey(std::string_view pem);
Result<Cert> parseCertificate(std::string_view pem);
// Every certificate in a PEM bundle, in order; fails when there is none or one is malformed.
Result<std::vector<Cert>> parseCertificates(std::string_view pem);

// A PEM CSR for `key` whose only subjectAltName is the URI `spiffeId`.
Result<std::string> makeCsr(EVP_PKEY* key, const std::string& spiffeId);

// The URI subjectAltNames of `cert`.
std::vector<std::string> uriSans(X509* cert);
std::chrono::system_clock::time_point notBefore(X509* cert);
// The CA backdates every certificate's notBefore by this much (slack for clocks slightly behind
// its own), so a certificate was issued at notBefore + kNotBeforeBackdate.
inline constexpr std::chrono::seconds kNotBeforeBackdate{60};
std::chrono::system_clock::time_point notAfter(X509* cert);
std::string serialHex(X509* cert);

// The node a workload certificate was issued to: the CA writes it as the subject's
// organizationalUnitName "sluice-node/<name>" (the identity itself is the only SAN, as SPIFFE
// requires). "" when the certificate names none (issued by another CA, or not to a node).
inline constexpr std::string_view kIssuedToNodePrefix = "sluice-node/";
std::string issuedToNode(X509* cert);

// The one revocation rule, for the CA (node credentials) and the tunnels (workload certificates
// issued to a node): a credential of `node` issued at or before its node's revocation second is
// revoked (fail closed within that second; a node is re-admitted with a credential issued
// later). `revokedAt`: node -> revocation time, Unix seconds. Returns the covering revocation
// time, nullopt when none covers it (or `node` is ""). Pure.
std::optional<int64_t> revocationCovering(const std::map<std::string, int64_t>& revokedAt, const std::string& node,
                                          std::chrono::system_clock::time_point issuedAt);

// Key and certificate files are written and read by the common helpers (sluice/common/files.h).
using sluice::readFile;
using sluice::writeFileAtomically;

}  // namespace sluice::pki
