// A workload's certificate as the data path uses it: the key (made on this node, never sent
// anywhere), the chain from the CA, the trust bundle, and two ready TLS contexts (HBONE server
// and client) built once per certificate, off the data path. Immutable; a rotation publishes a
// new one, and connections keep the one they started with (SSL_CTX is reference-counted).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "hbone/tls_channel.h"
#include "sluice/common/error.h"

namespace sluice::ztunnel {

struct WorkloadCertificate {
  std::string identity;  // spiffe://<td>/ns/<ns>/sa/<sa>
  std::string serial;
  std::string chainPem, rootPem;
  std::chrono::system_clock::time_point notBefore, notAfter;
  std::chrono::system_clock::time_point received;  // when this node got it
  hbone::SslCtxPtr serverContext, clientContext;

  // When to fetch the next one: half way through the lifetime left when it arrived (not from
  // notBefore, which the CA backdates a minute for skewed clocks).
  std::chrono::system_clock::time_point refreshAt() const { return received + (notAfter - received) / 2; }
};

// Checks the chain against the key and the bundle and builds the TLS contexts: TLS 1.3 only,
// AES-GCM suites, ALPN h2 (required), no session tickets, peer certificates required and
// verified against `rootPem`. The caller still checks the peer's SPIFFE ID after the handshake.
Result<std::shared_ptr<const WorkloadCertificate>> makeWorkloadCertificate(const std::string& identity,
                                                                          const std::string& keyPem,
                                                                          const std::string& chainPem,
                                                                          const std::string& rootPem);

// A TLS context from PEM material (also used by tests and the interop tools).
Result<hbone::SslCtxPtr> makeTlsContext(bool server, const std::string& keyPem, const std::string& chainPem,
                                        const std::string& rootPem);

}  // namespace sluice::ztunnel
