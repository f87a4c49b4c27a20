#include "sluice/common/pki.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <fstream>
#include <sstream>

namespace sluice::pki {
namespace {

using Bio = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using Names = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES, GENERAL_NAMES_free>>;

Bio readBio(std::string_view pem) { return Bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()))); }

std::string drain(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string();
}

std::chrono::system_clock::time_point toTimePoint(const ASN1_TIME* t) {
  struct tm parts {};
  if (ASN1_TIME_to_tm(t, &parts) != 1) return {};
  return std::chrono::system_clock::from_time_t(timegm(&parts));
}

}  // namespace

std::string spiffeIdFor(const std::string& trustDomain, const std::string& ns, const std::string& serviceAccount) {
  return fmt::format("spiffe://{}/ns/{}/sa/{}", trustDomain, ns, serviceAccount);
}

std::string opensslError(std::string_view what) {
  unsigned long code = ERR_get_error();
  char buf[256] = {};
  if (code != 0) ERR_error_string_n(code, buf, sizeof(buf));
  ERR_clear_error();
  return fmt::format("{}: {}", what, code != 0 ? buf : "failed");
}

Result<Key> generateP256Key() {
  Key key(EVP_EC_gen("P-256"));
  if (!key) return fail(opensslError("generate a P-256 key"));
  return key;
}

std::string privateKeyPem(EVP_PKEY* key) {
  Bio bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  return drain(bio.get());
}

std::string certificatePem(X509* cert) {
  Bio bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  return drain(bio.get());
}

Result<Key> parsePrivateKey(std::string_view pem) {
  Bio bio = readBio(pem);
  Key key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) return fail(opensslError("not a PEM private key"));
  return key;
}

Result<Cert> parseCertificate(std::string_view pem) {
  Bio bio = readBio(pem);
  Cert cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return fail(opensslError("not a PEM certificate"));
  return cert;
}

Result<std::vector<Cert>> parseCertificates(std::string_view pem) {
  Bio bio = readBio(pem);
  std::vector<Cert> out;
  while (true) {
    Cert cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) break;
    out.push_back(std::move(cert));
  }
  unsigned long last = ERR_peek_last_error();
  // The loop ends at "no start line" after the last certificate; anything else is damage.
  if (ERR_GET_REASON(last) == PEM_R_NO_START_LINE) ERR_clear_error();
  if (ERR_peek_error() != 0) return fail(opensslError("malformed PEM certificate bundle"));
  if (out.empty()) return fail("no certificate in the PEM bundle");
  return out;
}

Result<std::string> makeCsr(EVP_PKEY* key, const std::string& spiffeId) {
  Req req(X509_REQ_new());
  X509_REQ_set_version(req.get(), 0);
  X509_REQ_set_pubkey(req.get(), key);
  std::unique_ptr<STACK_OF(X509_EXTENSION), void (*)(STACK_OF(X509_EXTENSION)*)> exts(
      sk_X509_EXTENSION_new_null(), [](STACK_OF(X509_EXTENSION)* s) { sk_X509_EXTENSION_pop_free(s, X509_EXTENSION_free); });
  X509_EXTENSION* san = X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, ("URI:" + spiffeId).c_str());
  if (san == nullptr) return fail(opensslError("CSR subjectAltName " + spiffeId));
  sk_X509_EXTENSION_push(exts.get(), san);
  if (X509_REQ_add_extensions(req.get(), exts.get()) != 1 || X509_REQ_sign(req.get(), key, EVP_sha256()) == 0) {
    return fail(opensslError("sign the CSR"));
  }
  Bio bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509_REQ(bio.get(), req.get());
  return drain(bio.get());
}

std::vector<std::string> uriSans(X509* cert) {
  std::vector<std::string> out;
  Names names(static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names.get(), i);
    if (n->type != GEN_URI) continue;
    out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(n->d.uniformResourceIdentifier)),
                     static_cast<size_t>(ASN1_STRING_length(n->d.uniformResourceIdentifier)));
  }
  return out;
}

std::chrono::system_clock::time_point notBefore(X509* cert) { return toTimePoint(X509_get0_notBefore(cert)); }
std::chrono::system_clock::time_point notAfter(X509* cert) { return toTimePoint(X509_get0_notAfter(cert)); }

std::string serialHex(X509* cert) {
  std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>> bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
  if (!bn) return {};
  char* hex = BN_bn2hex(bn.get());
  std::string out = hex;
  OPENSSL_free(hex);
  return out;
}

std::string issuedToNode(X509* cert) {
  X509_NAME* subject = X509_get_subject_name(cert);
  int index = subject == nullptr ? -1 : X509_NAME_get_index_by_NID(subject, NID_organizationalUnitName, -1);
  if (index < 0) return {};
  ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index));
  if (data == nullptr) return {};
  std::string unit(reinterpret_cast<const char*>(ASN1_STRING_get0_data(data)), static_cast<size_t>(ASN1_STRING_length(data)));
  if (unit.rfind(kIssuedToNodePrefix, 0) != 0) return {};
  return unit.substr(kIssuedToNodePrefix.size());
}

std::optional<int64_t> revocationCovering(const std::map<std::string, int64_t>& revokedAt, const std::string& node,
                                          std::chrono::system_clock::time_point issuedAt) {
  if (node.empty()) return std::nullopt;
  auto it = revokedAt.find(node);
  if (it == revokedAt.end()) return std::nullopt;
  int64_t issued = std::chrono::duration_cast<std::chrono::seconds>(issuedAt.time_since_epoch()).count();
  if (issued > it->second) return std::nullopt;
  return it->second;
}

}  // namespace sluice::pki
