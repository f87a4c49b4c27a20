#include "identity/workload_certificate.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <fmt/format.h>

#include "sluice/common/pki.h"

namespace sluice::ztunnel {
namespace {

constexpr unsigned char kAlpnH2[] = {2, 'h', '2'};

int selectH2(SSL*, const unsigned char** out, unsigned char* outLength, const unsigned char* in, unsigned inLength, void*) {
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outLength, kAlpnH2, sizeof(kAlpnH2), in, inLength) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;  // HBONE is HTTP/2 only
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

Result<hbone::SslCtxPtr> makeTlsContext(bool server, const std::string& keyPem, const std::string& chainPem,
                                        const std::string& rootPem) {
  SLUICE_TRY_ASSIGN(key, pki::parsePrivateKey(keyPem));
  SLUICE_TRY_ASSIGN(chain, pki::parseCertificates(chainPem));
  SLUICE_TRY_ASSIGN(roots, pki::parseCertificates(rootPem));
  hbone::SslCtxPtr ctx(SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()));
  if (!ctx) return fail(pki::opensslError("SSL_CTX_new"));
  SSL_CTX* c = ctx.get();
  bool ok = SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION) == 1 && SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION) == 1 &&
            SSL_CTX_set_ciphersuites(c, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384") == 1 &&
            SSL_CTX_set1_groups_list(c, "X25519:P-256") == 1 && SSL_CTX_use_certificate(c, chain[0].get()) == 1 &&
            SSL_CTX_use_PrivateKey(c, key.get()) == 1 && SSL_CTX_check_private_key(c) == 1;
  for (size_t i = 1; ok && i < chain.size(); ++i) ok = SSL_CTX_add1_chain_cert(c, chain[i].get()) == 1;
  X509_STORE* store = SSL_CTX_get_cert_store(c);
  for (auto& root : roots) ok = ok && X509_STORE_add_cert(store, root.get()) == 1;
  if (!ok) return fail(pki::opensslError("TLS context"));
  SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  SSL_CTX_set_num_tickets(c, 0);
  // Idle connections give their read/write buffers back.
  SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
  if (server) {
    SSL_CTX_set_alpn_select_cb(c, selectH2, nullptr);
  } else if (SSL_CTX_set_alpn_protos(c, kAlpnH2, sizeof(kAlpnH2)) != 0) {
    return fail(pki::opensslError("ALPN"));
  }
  return ctx;
}

Result<std::shared_ptr<const WorkloadCertificate>> makeWorkloadCertificate(const std::string& identity,
                                                                          const std::string& keyPem,
                                                                          const std::string& chainPem,
                                                                          const std::string& rootPem) {
  SLUICE_TRY_ASSIGN(chain, pki::parseCertificates(chainPem));
  auto sans = pki::uriSans(chain[0].get());
  if (sans.size() != 1 || sans[0] != identity) {
    return fail(fmt::format("the certificate names {} instead of {}", sans.empty() ? "nothing" : sans[0], identity));
  }
  auto cert = std::make_shared<WorkloadCertificate>();
  cert->identity = identity;
  cert->serial = pki::serialHex(chain[0].get());
  cert->notBefore = pki::notBefore(chain[0].get());
  cert->notAfter = pki::notAfter(chain[0].get());
  cert->received = std::chrono::system_clock::now();
  cert->chainPem = chainPem;
  cert->rootPem = rootPem;
  SLUICE_TRY_ASSIGN(server, makeTlsContext(true, keyPem, chainPem, rootPem));
  SLUICE_TRY_ASSIGN(client, makeTlsContext(false, keyPem, chainPem, rootPem));
  cert->serverContext = std::move(server);
  cert->clientContext = std::move(client);
  return std::shared_ptr<const WorkloadCertificate>(std::move(cert));
}

}  // namespace sluice::ztunnel
