// TLS as a sans-IO filter (OpenSSL over memory BIOs): ciphertext in from the network,
// plaintext out to the HTTP/2 session, and back. No kTLS here, so this is where the tunnel
// spends its crypto; the worker owns the socket and moves the bytes with io_uring.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <span>
#include <chrono>
#include <string>

#include "sluice/common/error.h"

namespace sluice::ztunnel::hbone {

struct SslDeleter {
  void operator()(SSL* p) const { SSL_free(p); }
  void operator()(SSL_CTX* p) const { SSL_CTX_free(p); }
};
using SslPtr = std::unique_ptr<SSL, SslDeleter>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslDeleter>;

class TlsChannel {
 public:
  enum class Role { kClient, kServer };
  static Result<TlsChannel> create(SSL_CTX* context, Role role);

  // Ciphertext from the peer.
  void receiveCiphertext(std::span<const uint8_t> bytes);
  // Drives the handshake; true once it is complete. Fails when the handshake failed (bad
  // certificate, wrong protocol, ...): the error says why.
  Result<bool> handshake();
  bool established() const { return established_; }
  // Decrypts what is available into `out` (appending); returns false once the peer sent
  // close_notify. Fails on a TLS error.
  Result<bool> readPlaintext(std::string& out);
  // Encrypts `bytes` (always accepted: the output BIO grows).
  Status writePlaintext(std::span<const uint8_t> bytes);
  // Queues close_notify.
  void close();
  // Appends the ciphertext ready to send to `out`; returns how much.
  size_t takeCiphertext(std::string& out);
  bool hasCiphertext() const;

  // The peer's SPIFFE ID (its certificate's one spiffe:// URI SAN), "" when none or several.
  std::string peerIdentity() const;
  // The node the peer's certificate was issued to ("" when it names none) and when.
  struct Issuance {
    std::string node;
    std::chrono::system_clock::time_point issuedAt;
  };
  Issuance peerIssuance() const;
  SSL* ssl() const { return ssl_.get(); }

 private:
  SslPtr ssl_;
  BIO* in_ = nullptr;   // owned by ssl_
  BIO* out_ = nullptr;  // owned by ssl_
  bool established_ = false;
};

}  // namespace sluice::ztunnel::hbone
