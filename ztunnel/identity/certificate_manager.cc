#include "identity/certificate_manager.h"

#include <spdlog/spdlog.h>

#include "sluice/ca/v1/ca.grpc.pb.h"
#include "sluice/common/pki.h"

namespace sluice::ztunnel {

CertificateManager::CertificateManager(ChannelSource channel, Options options)
    : channel_(std::move(channel)), options_(options) {}

void CertificateManager::want(const std::string& identity) {
  std::lock_guard lock(mutex_);
  ++entries_[identity].users;
  wake_.notify_all();
}

void CertificateManager::release(const std::string& identity) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(identity);
  if (it != entries_.end() && --it->second.users <= 0) entries_.erase(it);
}

std::shared_ptr<const WorkloadCertificate> CertificateManager::get(const std::string& identity) const {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(identity);
  if (it == entries_.end() || !it->second.current) return nullptr;
  if (std::chrono::system_clock::now() >= it->second.current->notAfter) return nullptr;  // never use an expired one
  return it->second.current;
}

std::vector<CertificateStatus> CertificateManager::describe() const {
  std::lock_guard lock(mutex_);
  std::vector<CertificateStatus> out;
  for (const auto& [identity, e] : entries_) {
    CertificateStatus s;
    s.identity = identity;
    s.users = e.users;
    s.fetches = e.fetches;
    s.failures = e.failures;
    s.lastError = e.lastError;
    if (e.current) {
      s.serial = e.current->serial;
      s.notBefore = e.current->notBefore;
      s.notAfter = e.current->notAfter;
      s.refreshAt = e.current->refreshAt();
    }
    out.push_back(std::move(s));
  }
  return out;
}

Result<std::shared_ptr<const WorkloadCertificate>> CertificateManager::fetch(const std::string& identity, std::string* rootPem) {
  SLUICE_TRY_ASSIGN(key, pki::generateP256Key());
  SLUICE_TRY_ASSIGN(csr, pki::makeCsr(key.get(), identity));
  ca::v1::CertificateRequest request;
  request.set_csr(csr);
  request.set_identity(identity);
  request.set_validity_seconds(options_.requestedValidity.count());
  ca::v1::CertificateResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + options_.rpcTimeout);
  auto stub = ca::v1::CertificateService::NewStub(channel_());
  grpc::Status status = stub->CreateCertificate(&context, request, &response);
  if (!status.ok()) return fail("the CA refused: " + status.error_message());
  std::string chain;
  for (const auto& pem : response.cert_chain()) chain += pem;
  *rootPem = response.root_cert();
  return makeWorkloadCertificate(identity, pki::privateKeyPem(key.get()), chain, response.root_cert());
}

void CertificateManager::run(const std::atomic<bool>& stopping) {
  while (!stopping) {
    // Pick the identities due now (outside the lock for the RPCs).
    std::vector<std::string> due;
    auto nowSteady = std::chrono::steady_clock::now();
    auto now = std::chrono::system_clock::now();
    {
      std::unique_lock lock(mutex_);
      for (auto& [identity, e] : entries_) {
        bool needed = !e.current || e.forceRefresh || now >= e.current->refreshAt();
        if (needed && nowSteady >= e.nextAttempt) due.push_back(identity);
      }
      if (due.empty()) {
        wake_.wait_for(lock, std::chrono::milliseconds(200));
        continue;
      }
    }
    for (const auto& identity : due) {
      std::string root;
      auto fetched = fetch(identity, &root);
      std::lock_guard lock(mutex_);
      auto it = entries_.find(identity);
      if (it == entries_.end()) continue;  // the last pod left meanwhile
      Entry& e = it->second;
      ++e.fetches;
      if (!fetched) {
        ++e.failures;
        e.lastError = fetched.error().message();
        e.backoff = std::clamp(e.backoff * 2, options_.minBackoff, options_.maxBackoff);
        e.nextAttempt = std::chrono::steady_clock::now() + e.backoff;
        // A pod's first seconds may see refusals while the controller learns of it: info then,
        // a warning once it has failed for longer (kFailureGrace).
        auto failedAt = std::chrono::steady_clock::now();
        if (!e.failingSince) e.failingSince = failedAt;
        bool lasting = failedAt - *e.failingSince >= kFailureGrace;
        spdlog::log(lasting ? spdlog::level::warn : spdlog::level::info, "certificate for {}: {} (retry in {} ms)", identity,
                    e.lastError, e.backoff.count());
        continue;
      }
      e.failingSince.reset();
      e.current = std::move(*fetched);
      e.forceRefresh = false;
      e.lastError.clear();
      e.backoff = std::chrono::milliseconds(0);
      e.nextAttempt = {};
      spdlog::info("certificate for {}: serial {}", identity, e.current->serial);
      if (!trustBundle_.empty() && root != trustBundle_) {
        spdlog::warn("the trust bundle changed: fetching every certificate again");
        for (auto& [other, o] : entries_) o.forceRefresh = other != identity;
      }
      trustBundle_ = root;
    }
  }
}

}  // namespace sluice::ztunnel
