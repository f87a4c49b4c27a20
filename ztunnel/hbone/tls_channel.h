// TLS as a sans-IO filter: ciphertext in from the network, plaintext out to the HTTP/2 session,
// and back. No kTLS here, so this is where the tunnel spends its crypto; the worker owns the
// socket and moves the bytes with io_uring.
//
// OpenSSL talks to a BIO of our own (not memory BIOs): it reads the caller's received bytes in
// place and appends the records it writes straight to the caller's send buffer. Memory BIOs
// cost two more copies per byte and a memset of their whole buffer on every reset, a sixth of
// the tunnel's CPU in a bulk mTLS transfer.
//
// Invariants: received bytes are only borrowed for one receive() call, and TLS reads all of
// them (a partial record is held inside OpenSSL, in its read buffer). Ciphertext made outside a
// call that names its output (handshake answers while receiving, close_notify) waits in
// `pending` and goes out before anything newer.
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <memory>
#include <span>
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

  struct Received {
    bool established = false;  // the handshake is complete (possibly just now)
    bool open = true;          // false once the peer sent close_notify
  };
  // Ciphertext from the peer: drives the handshake and decrypts what is complete into
  // `plaintext` (appending). Fails when the handshake failed (bad certificate, wrong
  // protocol, ...: the error says why) or on a TLS error.
  Result<Received> receive(std::span<const uint8_t> ciphertext, std::string& plaintext);
  // Drives the handshake (a client's first call sends its ClientHello) and appends the
  // ciphertext to send, pending first, to `out`; true once the handshake is complete.
  Result<bool> handshake(std::string& out);
  bool established() const { return established_; }
  // Encrypts `bytes` and appends the records to `out` (after anything pending).
  Status writePlaintext(std::span<const uint8_t> bytes, std::string& out);
  // Queues close_notify.
  void close();
  // Appends the ciphertext waiting to be sent to `out`; returns how much.
  size_t takeCiphertext(std::string& out);

  // The peer's SPIFFE ID (its certificate's one spiffe:// URI SAN), "" when none or several.
  std::string peerIdentity() const;
  // The node the peer's certificate was issued to ("" when it names none) and when.
  struct Issuance {
    std::string node;
    std::chrono::system_clock::time_point issuedAt;
  };
  Issuance peerIssuance() const;
  SSL* ssl() const { return ssl_.get(); }

  // What the BIO reads from and writes to. Heap-held so its address survives moving the
  // channel: the BIO keeps a pointer to it.
  struct Buffers {
    std::span<const uint8_t> input;  // borrowed for one receive()
    std::string pending;             // ciphertext made with no output named
    std::string* sink = &pending;    // where written records go now
  };

 private:
  Result<bool> driveHandshake();
  Result<bool> decrypt(std::string& plaintext);
  std::unique_ptr<Buffers> buffers_;  // declared first: outlives the BIO that points to it
  SslPtr ssl_;
  bool established_ = false;
};

}  // namespace sluice::ztunnel::hbone
