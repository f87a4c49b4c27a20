#include "hbone/tls_channel.h"

#include <openssl/err.h>

#include "sluice/common/pki.h"

namespace sluice::ztunnel::hbone {

Result<TlsChannel> TlsChannel::create(SSL_CTX* context, Role role) {
  TlsChannel channel;
  channel.ssl_.reset(SSL_new(context));
  if (!channel.ssl_) return fail(pki::opensslError("SSL_new"));
  channel.in_ = BIO_new(BIO_s_mem());
  channel.out_ = BIO_new(BIO_s_mem());
  if (channel.in_ == nullptr || channel.out_ == nullptr) {
    BIO_free(channel.in_);
    BIO_free(channel.out_);
    return fail("TLS memory BIOs");
  }
  // An empty input BIO means "try again later", not end of file.
  BIO_set_mem_eof_return(channel.in_, -1);
  SSL_set_bio(channel.ssl_.get(), channel.in_, channel.out_);
  if (role == Role::kServer) {
    SSL_set_accept_state(channel.ssl_.get());
  } else {
    SSL_set_connect_state(channel.ssl_.get());
  }
  return channel;
}

void TlsChannel::receiveCiphertext(std::span<const uint8_t> bytes) {
  if (!bytes.empty()) BIO_write(in_, bytes.data(), static_cast<int>(bytes.size()));
}

Result<bool> TlsChannel::handshake() {
  if (established_) return true;
  int rc = SSL_do_handshake(ssl_.get());
  if (rc == 1) {
    established_ = true;
    return true;
  }
  int err = SSL_get_error(ssl_.get(), rc);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return false;
  long verify = SSL_get_verify_result(ssl_.get());
  if (verify != X509_V_OK) {
    ERR_clear_error();
    return fail(std::string("TLS handshake: peer certificate: ") + X509_verify_cert_error_string(verify));
  }
  return fail(pki::opensslError("TLS handshake"));
}

Result<bool> TlsChannel::readPlaintext(std::string& out) {
  constexpr size_t kRecord = 16384;  // the largest TLS record's plaintext
  while (true) {
    // Decrypt straight into `out`'s tail (no bounce buffer on the hot path).
    size_t used = out.size();
    int ok = 0;
    out.resize_and_overwrite(used + kRecord, [&](char* data, size_t) {
      size_t n = 0;
      ok = SSL_read_ex(ssl_.get(), data + used, kRecord, &n);
      return used + n;
    });
    if (ok == 1) continue;
    int err = SSL_get_error(ssl_.get(), 0);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return true;
    if (err == SSL_ERROR_ZERO_RETURN) return false;
    return fail(pki::opensslError("TLS read"));
  }
}

Status TlsChannel::writePlaintext(std::span<const uint8_t> bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    size_t written = 0;
    if (SSL_write_ex(ssl_.get(), bytes.data() + done, bytes.size() - done, &written) != 1) {
      return fail(pki::opensslError("TLS write"));
    }
    done += written;
  }
  return {};
}

void TlsChannel::close() {
  if (established_) SSL_shutdown(ssl_.get());
}

size_t TlsChannel::takeCiphertext(std::string& out) {
  char* data = nullptr;
  long n = BIO_get_mem_data(out_, &data);
  if (n <= 0) return 0;
  out.append(data, static_cast<size_t>(n));
  (void)BIO_reset(out_);
  return static_cast<size_t>(n);
}

bool TlsChannel::hasCiphertext() const { return BIO_ctrl_pending(out_) > 0; }

std::string TlsChannel::peerIdentity() const {
  X509* peer = SSL_get0_peer_certificate(ssl_.get());
  if (peer == nullptr) return {};
  std::string found;
  for (const auto& uri : pki::uriSans(peer)) {
    if (uri.rfind("spiffe://", 0) != 0) continue;
    if (!found.empty()) return {};  // several identities: none
    found = uri;
  }
  return found;
}

TlsChannel::Issuance TlsChannel::peerIssuance() const {
  X509* peer = SSL_get0_peer_certificate(ssl_.get());
  if (peer == nullptr) return {};
  return {pki::issuedToNode(peer), pki::notBefore(peer) + pki::kNotBeforeBackdate};
}

}  // namespace sluice::ztunnel::hbone
