#include "hbone/tls_channel.h"

#include <openssl/bio.h>
#include <openssl/err.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "sluice/common/pki.h"

namespace sluice::ztunnel::hbone {
namespace {

using Buffers = TlsChannel::Buffers;

Buffers& buffersOf(BIO* bio) { return *static_cast<Buffers*>(BIO_get_data(bio)); }

// Reads the borrowed input. Nothing left reads as "try again later", never as end of file.
int bioRead(BIO* bio, char* dst, size_t want, size_t* got) {
  Buffers& b = buffersOf(bio);
  BIO_clear_retry_flags(bio);
  size_t n = std::min(want, b.input.size());
  if (n > 0) std::memcpy(dst, b.input.data(), n);
  b.input = b.input.subspan(n);
  *got = n;
  if (n == 0) {
    BIO_set_retry_read(bio);
    return 0;
  }
  return 1;
}

// Appends records to the current sink: always accepted.
int bioWrite(BIO* bio, const char* src, size_t length, size_t* written) {
  Buffers& b = buffersOf(bio);
  BIO_clear_retry_flags(bio);
  b.sink->append(src, length);
  *written = length;
  return 1;
}

long bioCtrl(BIO* bio, int command, long, void*) {
  switch (command) {
    case BIO_CTRL_FLUSH:
      return 1;
    case BIO_CTRL_PENDING: {
      const Buffers& b = buffersOf(bio);
      return static_cast<long>(b.input.size());
    }
    default:
      return 0;  // WPENDING (nothing is held back), kTLS queries, ...
  }
}

int bioCreate(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

const BIO_METHOD* bufferMethod() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "sluice TLS buffers");
    if (m != nullptr) {
      BIO_meth_set_read_ex(m, bioRead);
      BIO_meth_set_write_ex(m, bioWrite);
      BIO_meth_set_ctrl(m, bioCtrl);
      BIO_meth_set_create(m, bioCreate);
    }
    return m;
  }();
  return method;
}

// Records written while it lives go to `out`, after whatever was pending.
class SinkScope {
 public:
  SinkScope(Buffers& buffers, std::string& out) : buffers_(buffers) {
    if (out.empty()) {
      out.swap(buffers.pending);
    } else {
      out.append(buffers.pending);
      buffers.pending.clear();
    }
    buffers.sink = &out;
  }
  ~SinkScope() { buffers_.sink = &buffers_.pending; }
  SinkScope(const SinkScope&) = delete;
  SinkScope& operator=(const SinkScope&) = delete;

 private:
  Buffers& buffers_;
};

// Lends `input` to the BIO for one receive() (the caller's buffer is gone after it).
class InputScope {
 public:
  InputScope(Buffers& buffers, std::span<const uint8_t> input) : buffers_(buffers) { buffers.input = input; }
  ~InputScope() { buffers_.input = {}; }
  InputScope(const InputScope&) = delete;
  InputScope& operator=(const InputScope&) = delete;

 private:
  Buffers& buffers_;
};

}  // namespace

Result<TlsChannel> TlsChannel::create(SSL_CTX* context, Role role) {
  TlsChannel channel;
  channel.buffers_ = std::make_unique<Buffers>();
  channel.ssl_.reset(SSL_new(context));
  if (!channel.ssl_) return fail(pki::opensslError("SSL_new"));
  const BIO_METHOD* method = bufferMethod();
  BIO* bio = method == nullptr ? nullptr : BIO_new(method);
  if (bio == nullptr) return fail(pki::opensslError("TLS BIO"));
  BIO_set_data(bio, channel.buffers_.get());
  SSL_set_bio(channel.ssl_.get(), bio, bio);  // one reference, read and write
  if (role == Role::kServer) {
    SSL_set_accept_state(channel.ssl_.get());
  } else {
    SSL_set_connect_state(channel.ssl_.get());
  }
  return channel;
}

Result<bool> TlsChannel::driveHandshake() {
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

Result<TlsChannel::Received> TlsChannel::receive(std::span<const uint8_t> ciphertext, std::string& plaintext) {
  InputScope input(*buffers_, ciphertext);
  if (!established_) {
    SLUICE_TRY_ASSIGN(done, driveHandshake());
    if (!done) return Received{.established = false};
  }
  SLUICE_TRY_ASSIGN(open, decrypt(plaintext));
  // TLS reads until it needs more, so only close_notify stops it early (what follows it is
  // dropped with the connection). Anything else left unread would be lost: fail closed.
  if (open && !buffers_->input.empty()) {
    return fail(fmt::format("TLS left {} received bytes unread", buffers_->input.size()));
  }
  return Received{.established = true, .open = open};
}

Result<bool> TlsChannel::decrypt(std::string& out) {
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

Result<bool> TlsChannel::handshake(std::string& out) {
  SinkScope sink(*buffers_, out);
  return driveHandshake();
}

Status TlsChannel::writePlaintext(std::span<const uint8_t> bytes, std::string& out) {
  SinkScope sink(*buffers_, out);
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
  size_t n = buffers_->pending.size();
  if (n == 0) return 0;
  SinkScope move(*buffers_, out);  // moves `pending` to `out`
  return n;
}

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
