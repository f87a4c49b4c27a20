#include "hbone/hbone_connection.h"

namespace sluice::ztunnel::hbone {

Result<std::unique_ptr<HboneConnection>> HboneConnection::create(Role role, SSL_CTX* context, http2::SessionLimits limits) {
  SLUICE_TRY_ASSIGN(tls, TlsChannel::create(context, role == Role::kServer ? TlsChannel::Role::kServer : TlsChannel::Role::kClient));
  SLUICE_TRY_ASSIGN(session, http2::Http2Session::create(
                                 role == Role::kServer ? http2::Http2Session::Role::kServer : http2::Http2Session::Role::kClient, limits));
  return std::unique_ptr<HboneConnection>(new HboneConnection(std::move(tls), std::move(session)));
}

bool HboneConnection::justEstablished() {
  if (!tls_.established() || announced_) return false;
  announced_ = true;
  return true;
}

Status HboneConnection::receive(std::span<const uint8_t> ciphertext) {
  plaintext_.clear();
  SLUICE_TRY_ASSIGN(received, tls_.receive(ciphertext, plaintext_));
  if (!received.open) peerClosed_ = true;
  if (plaintext_.empty()) return {};
  // Verification happens between justEstablished() and peerVerified(); a peer that sends
  // frames before we verified it (possible only in the same read) is still judged first by
  // the caller, which closes the connection on a mismatch before handling any event.
  return session_->receive({reinterpret_cast<const uint8_t*>(plaintext_.data()), plaintext_.size()});
}

Status HboneConnection::flush(std::string& out, size_t frameBudget) {
  // A client's first flush sends its ClientHello.
  if (!tls_.established()) SLUICE_TRY(tls_.handshake(out), "TLS");
  if (tls_.established() && verified_ && frameBudget > 0) {
    plaintext_.clear();
    SLUICE_TRY(session_->produce(plaintext_, frameBudget), "HTTP/2");
    if (!plaintext_.empty()) {
      SLUICE_TRY(tls_.writePlaintext({reinterpret_cast<const uint8_t*>(plaintext_.data()), plaintext_.size()}, out), "TLS");
    }
  }
  tls_.takeCiphertext(out);  // what receiving or close() queued, when nothing above wrote
  return {};
}

}  // namespace sluice::ztunnel::hbone
