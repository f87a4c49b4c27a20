// The node's workload certificates (control side). For each identity a pod on this node runs
// as, it makes a P-256 key here, sends a CSR to the controller's CA and keeps the answer as a
// WorkloadCertificate; it fetches again at half of the lifetime, retrying with backoff (200 ms
// doubling to 30 s) while the current one is still valid; when the trust bundle changes, every
// identity is fetched again so new connections trust the new root. Identities no pod uses any
// more are forgotten (their keys freed).
//
// Threads: run() on its own thread does every fetch; the workers call get() per new HBONE
// connection (a map lookup under a mutex, never a fetch); the control thread calls want()/
// release() as pods come and go; the admin thread reads describe().
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <optional>
#include <mutex>
#include <string>
#include <vector>

#include "identity/controller_link.h"
#include "identity/workload_certificate.h"

namespace sluice::ztunnel {

struct CertificateStatus {
  std::string identity;
  std::string serial;  // "" until the first certificate arrives
  std::chrono::system_clock::time_point notBefore, notAfter, refreshAt;
  uint64_t fetches = 0, failures = 0;
  int users = 0;
  std::string lastError;
};

class CertificateManager {
 public:
  // Refusals for this long are expected (a pod's start races the controller learning of it):
  // logged at info; past it, at warning.
  static constexpr std::chrono::seconds kFailureGrace{10};
  struct Options {
    std::chrono::seconds requestedValidity{0};  // 0: the CA's default
    std::chrono::milliseconds minBackoff{200}, maxBackoff{30000};
    std::chrono::seconds rpcTimeout{10};
  };
  // `channel`: the controller channel to use for each fetch (it changes when the node
  // credential is renewed).
  CertificateManager(ChannelSource channel, Options options);
  explicit CertificateManager(ChannelSource channel) : CertificateManager(std::move(channel), Options{}) {}

  // A pod with this identity arrived / left (reference counted).
  void want(const std::string& identity);
  void release(const std::string& identity);
  // The current certificate, or nullptr when none has arrived yet (or it expired).
  std::shared_ptr<const WorkloadCertificate> get(const std::string& identity) const;
  std::vector<CertificateStatus> describe() const;

  void run(const std::atomic<bool>& stopping);

 private:
  struct Entry {
    int users = 0;
    std::shared_ptr<const WorkloadCertificate> current;
    std::chrono::steady_clock::time_point nextAttempt{};
    std::chrono::milliseconds backoff{0};
    bool forceRefresh = false;
    uint64_t fetches = 0, failures = 0;
    std::string lastError;
    std::optional<std::chrono::steady_clock::time_point> failingSince;  // the first of the current run of failures
  };
  Result<std::shared_ptr<const WorkloadCertificate>> fetch(const std::string& identity, std::string* rootPem);

  ChannelSource channel_;
  Options options_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::map<std::string, Entry> entries_;
  std::string trustBundle_;
};

}  // namespace sluice::ztunnel
