#include "identity/controller_link.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/err.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>

#include <thread>

#include "sluice/ca/v1/ca.grpc.pb.h"
#include "sluice/common/pki.h"
#include "sluice/common/unique_fd.h"

namespace sluice::ztunnel {
namespace {

constexpr const char* kKey = "/node-key.pem";
constexpr const char* kPreviousKey = "/node-key.pem.previous";
constexpr const char* kCert = "/node-cert.pem";
constexpr const char* kRoot = "/root-cert.pem";

// The checks every credential passes before it is used or written: parseable, the key is the
// certificate's, exactly one URI SAN.
Result<NodeCredentialFiles> checkedCredential(std::string keyPem, std::string certPem, std::string rootPem) {
  SLUICE_TRY(pki::parseCertificates(rootPem), "root certificate");
  SLUICE_TRY_ASSIGN(chain, pki::parseCertificates(certPem));
  SLUICE_TRY_ASSIGN(key, pki::parsePrivateKey(keyPem));
  X509* leaf = chain.front().get();
  if (X509_check_private_key(leaf, key.get()) != 1) {
    ERR_clear_error();
    return fail("the key does not belong to the certificate");
  }
  auto uris = pki::uriSans(leaf);
  if (uris.size() != 1) return fail("the certificate must name exactly one identity (URI SAN)");
  NodeCredentialFiles out{std::move(keyPem), std::move(certPem), std::move(rootPem), uris.front(), pki::serialHex(leaf),
                          pki::notBefore(leaf), pki::notAfter(leaf)};
  return out;
}

}  // namespace

Result<NodeCredentialFiles> readNodeCredential(const std::string& folder) {
  SLUICE_TRY_ASSIGN(root, pki::readFile(folder + kRoot));
  SLUICE_TRY_ASSIGN(cert, pki::readFile(folder + kCert));
  SLUICE_TRY_ASSIGN(key, pki::readFile(folder + kKey));
  auto checked = checkedCredential(key, cert, root);
  if (checked) return checked;
  // A renewal cut short between the key and the certificate leaves the previous key beside
  // the certificate it belongs to.
  if (auto previous = pki::readFile(folder + kPreviousKey)) {
    if (auto paired = checkedCredential(*previous, cert, root)) return paired;
  }
  return fail(std::move(checked.error()).context("node credential in " + folder));
}

std::chrono::system_clock::time_point nodeCredentialRenewAt(std::chrono::system_clock::time_point notBefore,
                                                            std::chrono::system_clock::time_point notAfter) {
  auto issued = notBefore + pki::kNotBeforeBackdate;
  if (issued >= notAfter) return notBefore;  // a malformed lifetime: renew at once
  return issued + (notAfter - issued) / 2;
}

Result<std::unique_ptr<ControllerLink>> ControllerLink::open(const std::string& address, const std::string& credentialFolder,
                                                             Options options) {
  std::unique_ptr<ControllerLink> link(new ControllerLink(address, credentialFolder, options));
  if (credentialFolder.empty()) {
    link->channel_ = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
    return link;
  }
  SLUICE_TRY_ASSIGN(files, readNodeCredential(credentialFolder));
  if (std::chrono::system_clock::now() >= files.notAfter) {
    return fail(fmt::format("the node credential in {} expired (serial {}): issue a new one with `sluice-controller "
                            "node-credential`",
                            credentialFolder, files.serial));
  }
  SLUICE_TRY(link->use(std::move(files)), "node credential");
  return link;
}

Result<std::shared_ptr<grpc::Channel>> ControllerLink::makeChannel(const NodeCredentialFiles& files) const {
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = files.rootPem;
  options.pem_private_key = files.keyPem;
  options.pem_cert_chain = files.certPem;
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("sluice-controller");
  return grpc::CreateCustomChannel(address_, grpc::SslCredentials(options), args);
}

Status ControllerLink::use(NodeCredentialFiles files) {
  SLUICE_TRY_ASSIGN(channel, makeChannel(files));
  std::lock_guard lock(mutex_);
  channel_ = std::move(channel);
  files_ = std::move(files);
  return {};
}

std::shared_ptr<grpc::Channel> ControllerLink::channel() const {
  std::lock_guard lock(mutex_);
  return channel_;
}

std::optional<NodeCredentialStatus> ControllerLink::credential() const {
  std::lock_guard lock(mutex_);
  if (!files_) return std::nullopt;
  return NodeCredentialStatus{files_->identity, files_->serial, files_->notBefore, files_->notAfter,
                              nodeCredentialRenewAt(files_->notBefore, files_->notAfter), renewals_, adopted_, failures_,
                              lastError_};
}

Status ControllerLink::renew() {
  std::string lockPath = folder_ + "/.renew.lock";
  UniqueFd lock(::open(lockPath.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600));
  if (!lock) return failErrno("open " + lockPath + " (renewal writes the credential folder)");
  if (::flock(lock.get(), LOCK_EX) != 0) return failErrno("lock " + lockPath);
  NodeCredentialFiles current;
  {
    std::lock_guard guard(mutex_);
    current = *files_;
  }
  // Another tunnel of this node may have renewed meanwhile: take its credential.
  if (auto disk = readNodeCredential(folder_); disk && disk->identity == current.identity && disk->notAfter > current.notAfter) {
    SLUICE_TRY(use(std::move(*disk)), "adopt the credential in " + folder_);
    std::lock_guard guard(mutex_);
    ++adopted_;
    return {};
  }
  SLUICE_TRY_ASSIGN(key, pki::generateP256Key());
  SLUICE_TRY_ASSIGN(csr, pki::makeCsr(key.get(), current.identity));
  ca::v1::NodeCredentialRequest request;
  request.set_csr(csr);
  ca::v1::CertificateResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + options_.rpcTimeout);
  grpc::Status status = ca::v1::CertificateService::NewStub(channel())->RenewNodeCredential(&context, request, &response);
  if (!status.ok()) return fail("the CA refused: " + status.error_message());
  std::string chain;
  for (const auto& pem : response.cert_chain()) chain += pem;
  std::string root = response.root_cert().empty() ? current.rootPem : response.root_cert();
  SLUICE_TRY_ASSIGN(next, checkedCredential(pki::privateKeyPem(key.get()), chain, root));
  if (next.identity != current.identity) {
    return fail(fmt::format("the CA answered a credential for {}, not {}", next.identity, current.identity));
  }
  // One file at a time, each atomically; see the header for why the previous key goes first.
  SLUICE_TRY(pki::writeFileAtomically(folder_ + kPreviousKey, current.keyPem, 0600), "write " + folder_);
  if (next.rootPem != current.rootPem) SLUICE_TRY(pki::writeFileAtomically(folder_ + kRoot, next.rootPem, 0644), "write " + folder_);
  SLUICE_TRY(pki::writeFileAtomically(folder_ + kKey, next.keyPem, 0600), "write " + folder_);
  SLUICE_TRY(pki::writeFileAtomically(folder_ + kCert, next.certPem, 0644), "write " + folder_);
  std::string serial = next.serial;
  auto notAfter = next.notAfter;
  SLUICE_TRY(use(std::move(next)), "renewed credential");
  std::lock_guard guard(mutex_);
  ++renewals_;
  spdlog::info("node credential renewed: serial {} until {} s from now", serial,
               std::chrono::duration_cast<std::chrono::seconds>(notAfter - std::chrono::system_clock::now()).count());
  return {};
}

void ControllerLink::run(const std::atomic<bool>& stopping) {
  if (folder_.empty()) return;
  auto backoff = std::chrono::milliseconds(0);
  auto nextAttempt = std::chrono::steady_clock::now();
  while (!stopping) {
    std::chrono::system_clock::time_point renewAt;
    {
      std::lock_guard lock(mutex_);
      renewAt = nodeCredentialRenewAt(files_->notBefore, files_->notAfter);
    }
    if (std::chrono::system_clock::now() < renewAt || std::chrono::steady_clock::now() < nextAttempt) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      continue;
    }
    auto renewed = renew();
    std::lock_guard lock(mutex_);
    if (renewed) {
      lastError_.clear();
      backoff = std::chrono::milliseconds(0);
      continue;
    }
    ++failures_;
    lastError_ = renewed.error().message();
    backoff = std::clamp(backoff * 2, options_.minBackoff, options_.maxBackoff);
    nextAttempt = std::chrono::steady_clock::now() + backoff;
    bool expired = std::chrono::system_clock::now() >= files_->notAfter;
    spdlog::log(expired ? spdlog::level::err : spdlog::level::warn, "node credential renewal{}: {} (retry in {} ms)",
                expired ? " (the credential has expired)" : "", lastError_, backoff.count());
  }
}

}  // namespace sluice::ztunnel
