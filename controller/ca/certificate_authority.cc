#include "ca/certificate_authority.h"

#include "sluice/common/pki.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace sluice::controller {
namespace fs = std::filesystem;

namespace {

using pki::Cert;
using pki::Key;
using pki::opensslError;
using Bio = std::unique_ptr<BIO, pki::Deleter<BIO, BIO_free_all>>;
using Ext = std::unique_ptr<X509_EXTENSION, pki::Deleter<X509_EXTENSION, X509_EXTENSION_free>>;
using Names = std::unique_ptr<GENERAL_NAMES, pki::Deleter<GENERAL_NAMES, GENERAL_NAMES_free>>;

Status addExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  Ext ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) return fail(opensslError(fmt::format("extension {}", value)));
  return {};
}

Status setSerialAndValidity(X509* cert, std::chrono::seconds validity, std::string* serialHex) {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) return fail(opensslError("random serial"));
  bytes[0] &= 0x7f;  // positive
  std::unique_ptr<BIGNUM, pki::Deleter<BIGNUM, BN_free>> bn(BN_bin2bn(bytes, sizeof(bytes), nullptr));
  ASN1_INTEGER* serial = X509_get_serialNumber(cert);
  if (!bn || BN_to_ASN1_INTEGER(bn.get(), serial) == nullptr) return fail(opensslError("serial"));
  if (serialHex != nullptr) {
    char* hex = BN_bn2hex(bn.get());
    *serialHex = hex;
    OPENSSL_free(hex);
  }
  X509_gmtime_adj(X509_getm_notBefore(cert), -static_cast<long>(pki::kNotBeforeBackdate.count()));
  X509_gmtime_adj(X509_getm_notAfter(cert), static_cast<long>(validity.count()));
  return {};
}

}  // namespace

struct CertificateAuthority::Impl {
  Key key;
  Cert cert;
};

CertificateAuthority::~CertificateAuthority() = default;


Result<std::unique_ptr<CertificateAuthority>> CertificateAuthority::openOrCreate(const std::string& dir,
                                                                                 const std::string& trustDomain) {
  std::unique_ptr<CertificateAuthority> ca(new CertificateAuthority());
  ca->impl_ = std::make_unique<Impl>();
  ca->trustDomain_ = trustDomain;
  std::string keyPath = dir + "/root-key.pem", certPath = dir + "/root-cert.pem";
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return fail(fmt::format("create {}: {}", dir, ec.message()));
  if (fs::exists(keyPath) && fs::exists(certPath)) {
    auto keyPem = pki::readFile(keyPath);
    auto certPem = pki::readFile(certPath);
    if (!keyPem || !certPem) return fail(std::move((!keyPem ? keyPem : certPem).error()));
    Bio kb(BIO_new_mem_buf(keyPem->data(), static_cast<int>(keyPem->size())));
    Bio cb(BIO_new_mem_buf(certPem->data(), static_cast<int>(certPem->size())));
    ca->impl_->key.reset(PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr));
    ca->impl_->cert.reset(PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr));
    if (!ca->impl_->key || !ca->impl_->cert) return fail(opensslError("load the CA root from " + dir));
    if (X509_check_private_key(ca->impl_->cert.get(), ca->impl_->key.get()) != 1) {
      return fail(fmt::format("{}: root-key.pem does not belong to root-cert.pem", dir));
    }
    ca->rootPem_ = *certPem;
    return ca;
  }
  // First start: a new root.
  ca->impl_->key.reset(EVP_EC_gen("P-256"));
  if (!ca->impl_->key) return fail(opensslError("generate the CA key"));
  ca->impl_->cert.reset(X509_new());
  X509* cert = ca->impl_->cert.get();
  X509_set_version(cert, 2);
  SLUICE_TRY(setSerialAndValidity(cert, std::chrono::hours(24 * 365 * 10), nullptr), "CA root");
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(trustDomain.c_str()), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("Sluice root CA"), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  X509_set_pubkey(cert, ca->impl_->key.get());
  SLUICE_TRY(addExtension(cert, cert, NID_basic_constraints, "critical,CA:TRUE"), "CA root");
  SLUICE_TRY(addExtension(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign"), "CA root");
  SLUICE_TRY(addExtension(cert, cert, NID_subject_key_identifier, "hash"), "CA root");
  if (X509_sign(cert, ca->impl_->key.get(), EVP_sha256()) == 0) return fail(opensslError("self-sign the CA root"));
  ca->rootPem_ = pki::certificatePem(cert);
  // The key file is created 0600 before anything is written to it; the certificate is
  // published last: a crash in between leaves no half-made root behind (without
  // root-cert.pem the next start creates a new pair).
  SLUICE_TRY(pki::writeFileAtomically(keyPath, pki::privateKeyPem(ca->impl_->key.get()), 0600), "CA root key");
  SLUICE_TRY(pki::writeFileAtomically(certPath, ca->rootPem_, 0644), "CA root certificate");
  return ca;
}

Result<IssuedCertificate> CertificateAuthority::sign(const std::string& csrPem, const std::string& spiffeId,
                                                     std::chrono::seconds validity, const std::string& issuedTo) const {
  if (csrPem.size() > 64 * 1024) return fail("CSR larger than 64 KiB");
  Bio bio(BIO_new_mem_buf(csrPem.data(), static_cast<int>(csrPem.size())));
  pki::Req req(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
  if (!req) return fail(opensslError("CSR is not a PEM certificate request"));
  Key pub(X509_REQ_get_pubkey(req.get()));
  if (!pub) return fail("CSR has no public key");
  if (X509_REQ_verify(req.get(), pub.get()) != 1) return fail(opensslError("CSR signature does not verify"));
  char group[64] = {};
  size_t groupLength = 0;
  if (EVP_PKEY_get_base_id(pub.get()) != EVP_PKEY_EC ||
      EVP_PKEY_get_utf8_string_param(pub.get(), "group", group, sizeof(group), &groupLength) != 1 ||
      std::string(group) != "prime256v1") {
    return fail("CSR key must be ECDSA P-256");
  }
  // The identities the CSR asks for must be exactly the one granted.
  std::unique_ptr<STACK_OF(X509_EXTENSION), void (*)(STACK_OF(X509_EXTENSION)*)> exts(
      X509_REQ_get_extensions(req.get()), [](STACK_OF(X509_EXTENSION)* s) { sk_X509_EXTENSION_pop_free(s, X509_EXTENSION_free); });
  if (exts) {
    Names names(static_cast<GENERAL_NAMES*>(X509V3_get_d2i(exts.get(), NID_subject_alt_name, nullptr, nullptr)));
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names.get()); ++i) {
      const GENERAL_NAME* n = sk_GENERAL_NAME_value(names.get(), i);
      std::string asked = n->type == GEN_URI ? std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(n->d.uniformResourceIdentifier)),
                                                           static_cast<size_t>(ASN1_STRING_length(n->d.uniformResourceIdentifier)))
                                             : "(a non-URI name)";
      if (asked != spiffeId) return fail(fmt::format("CSR asks for {}, but the caller may only get {}", asked, spiffeId));
    }
  }
  return issue(pub.get(), "critical,URI:" + spiffeId, validity, issuedTo);
}

Result<IssuedCertificate> CertificateAuthority::issue(EVP_PKEY* publicKey, const std::string& subjectAltNames,
                                                      std::chrono::seconds validity, const std::string& issuedTo) const {
  Cert cert(X509_new());
  X509_set_version(cert.get(), 2);
  if (!issuedTo.empty()) {
    std::string unit = std::string(pki::kIssuedToNodePrefix) + issuedTo;
    if (X509_NAME_add_entry_by_NID(X509_get_subject_name(cert.get()), NID_organizationalUnitName, MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(unit.c_str()), -1, -1, 0) != 1) {
      return fail(opensslError("record the node in the subject"));
    }
  }
  IssuedCertificate issued;
  SLUICE_TRY(setSerialAndValidity(cert.get(), validity, &issued.serialHex), "certificate");
  X509_set_issuer_name(cert.get(), X509_get_subject_name(impl_->cert.get()));
  X509_set_pubkey(cert.get(), publicKey);
  X509* root = impl_->cert.get();
  SLUICE_TRY(addExtension(cert.get(), root, NID_basic_constraints, "critical,CA:FALSE"), "certificate");
  SLUICE_TRY(addExtension(cert.get(), root, NID_key_usage, "critical,digitalSignature,keyEncipherment"), "certificate");
  SLUICE_TRY(addExtension(cert.get(), root, NID_ext_key_usage, "serverAuth,clientAuth"), "certificate");
  SLUICE_TRY(addExtension(cert.get(), root, NID_authority_key_identifier, "keyid:always"), "certificate");
  SLUICE_TRY(addExtension(cert.get(), root, NID_subject_alt_name, subjectAltNames.c_str()), "certificate");
  if (X509_sign(cert.get(), impl_->key.get(), EVP_sha256()) == 0) return fail(opensslError("sign the certificate"));
  issued.certificatePem = pki::certificatePem(cert.get());
  issued.notAfter = pki::notAfter(cert.get());
  return issued;
}

Result<IssuedKeyPair> CertificateAuthority::issueKeyPair(const std::vector<std::string>& subjectAltNames,
                                                         std::chrono::seconds validity) const {
  if (subjectAltNames.empty()) return fail("a certificate needs at least one subjectAltName");
  std::string sans = "critical";
  for (const auto& san : subjectAltNames) sans += "," + san;
  SLUICE_TRY_ASSIGN(key, pki::generateP256Key());
  SLUICE_TRY_ASSIGN(cert, issue(key.get(), sans, validity));
  return IssuedKeyPair{pki::privateKeyPem(key.get()), std::move(cert)};
}

Status identityAllowedForNode(const ConfigSet& config, const std::string& trustDomain, const std::string& node,
                              const std::string& spiffeId) {
  std::string prefix = "spiffe://" + trustDomain + "/ns/";
  if (spiffeId.rfind(prefix, 0) != 0) {
    return fail(fmt::format("{} is not an identity of trust domain {}", spiffeId, trustDomain));
  }
  bool elsewhere = false;
  for (const auto* w : config.workloads()) {
    if (spiffeIdFor(trustDomain, w->namespace_(), w->service_account()) != spiffeId) continue;
    if (w->node() == node) return {};
    elsewhere = true;
  }
  // The two refusals read differently: an identity only other nodes run is a node asking for
  // what it must not hold; one no workload has yet is, at a pod's start, the controller not
  // having learnt of the pod (the node asks again).
  if (elsewhere) return fail(fmt::format("node {} runs no workload with identity {} (other nodes do): refused", node, spiffeId));
  return fail(fmt::format("node {} runs no workload with identity {} (no known workload has it yet): refused", node, spiffeId));
}

}  // namespace sluice::controller
