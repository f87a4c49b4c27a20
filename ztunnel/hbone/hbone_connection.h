// One HBONE connection, sans-IO: TLS 1.3 (TlsChannel) carrying HTTP/2 CONNECT streams
// (http2::Http2Session, http2/). The worker feeds it what the socket received and sends what flush()
// returns; until the handshake is complete the session's bytes wait (a client may open its
// first streams at once, so concurrent first requests share one handshake).
//
// Identity: after the handshake completes (justEstablished()), the caller checks
// peerIdentity() against what it expects: the destination's identity for a client, the trust
// domain for a server. Nothing of the session reaches the peer before that check passes, and
// the caller closes the connection when it fails.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "http2/http2_session.h"
#include "hbone/tls_channel.h"

namespace sluice::ztunnel::hbone {

class HboneConnection {
 public:
  enum class Role { kClient, kServer };
  static Result<std::unique_ptr<HboneConnection>> create(Role role, SSL_CTX* context, http2::SessionLimits limits = {});

  // Ciphertext from the socket. Fails on a TLS or HTTP/2 error (close the connection).
  Status receive(std::span<const uint8_t> ciphertext);
  // Appends the ciphertext to send to `out` (handshake records, then encrypted frames once
  // the peer is verified); HTTP/2 frames only up to about `frameBudget` bytes (the rest stays
  // queued in the session). Fails on an HTTP/2 or TLS error.
  Status flush(std::string& out, size_t frameBudget = SIZE_MAX);
  bool established() const { return tls_.established(); }
  // True once, right after the handshake completed: verify the peer now.
  bool justEstablished();
  // The caller checked the peer: session bytes may flow.
  void peerVerified() { verified_ = true; }
  bool peerClosed() const { return peerClosed_; }
  std::string peerIdentity() const { return tls_.peerIdentity(); }
  TlsChannel::Issuance peerIssuance() const { return tls_.peerIssuance(); }
  void close() { tls_.close(); }
  // Whatever TLS has queued (e.g. the alert of a failed handshake), without driving anything.
  void takeCiphertext(std::string& out) { tls_.takeCiphertext(out); }

  http2::Http2Session& session() { return *session_; }
  const http2::Http2Session& session() const { return *session_; }

 private:
  HboneConnection(TlsChannel tls, std::unique_ptr<http2::Http2Session> session)
      : tls_(std::move(tls)), session_(std::move(session)) {}
  TlsChannel tls_;
  std::unique_ptr<http2::Http2Session> session_;
  std::string plaintext_;  // scratch, reused
  bool announced_ = false, verified_ = false, peerClosed_ = false;
};

}  // namespace sluice::ztunnel::hbone
