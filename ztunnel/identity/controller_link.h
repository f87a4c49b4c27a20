// The node's link to sluice-controller: the gRPC channel every control call uses, and the node
// credential that authenticates it.
//
// With a node credential folder (node-key.pem, node-cert.pem, root-cert.pem from `sluice-controller
// node-credential`) the channel is mTLS to the controller's secure port: the node proves who it
// is, and the controller must present a certificate from the same root naming
// "sluice-controller". Without one it is plaintext (the controller's 15010): configuration, no
// certificates.
//
// Node credentials are short-lived: run() renews this one over the channel itself at half of its
// lifetime (RenewNodeCredential: a new key made here, a CSR for the node's own identity), writes
// it back to the folder, so a restart starts from the newest, and switches the channel to it:
// callers take channel() per call or per stream, and a stream already open keeps the connection
// it was authenticated on. Failures retry with backoff while the current credential is valid.
//
// The folder is shared by the node's tunnels (two run at once during an upgrade): a renewal
// holds an exclusive lock on "<folder>/.renew.lock", and first adopts a fresher credential
// another tunnel wrote. The files are replaced one at a time (atomically each): the previous key
// is kept as node-key.pem.previous first, so a reader that finds the new key beside the old
// certificate (a renewal cut short) pairs the certificate with the previous key.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "sluice/common/error.h"

namespace sluice::ztunnel {

// The channel to use now (the link switches it when the credential is renewed).
using ChannelSource = std::function<std::shared_ptr<grpc::Channel>()>;

// The PEM material of a node credential folder, checked: the key matches the certificate.
struct NodeCredentialFiles {
  std::string keyPem, certPem, rootPem;
  std::string identity, serial;  // the certificate's URI SAN and serial
  std::chrono::system_clock::time_point notBefore, notAfter;
};
Result<NodeCredentialFiles> readNodeCredential(const std::string& folder);

// When a node credential valid from `notBefore` (backdated by the CA) to `notAfter` is renewed:
// half way through the lifetime it was issued with. Pure.
std::chrono::system_clock::time_point nodeCredentialRenewAt(std::chrono::system_clock::time_point notBefore,
                                                            std::chrono::system_clock::time_point notAfter);

struct NodeCredentialStatus {
  std::string identity, serial;
  std::chrono::system_clock::time_point notBefore, notAfter, renewAt;
  uint64_t renewals = 0, adopted = 0, failures = 0;
  std::string lastError;
};

class ControllerLink {
 public:
  struct Options {
    std::chrono::milliseconds minBackoff{1000}, maxBackoff{60000};
    std::chrono::seconds rpcTimeout{10};
  };
  // Plaintext when `credentialFolder` is empty.
  static Result<std::unique_ptr<ControllerLink>> open(const std::string& address, const std::string& credentialFolder,
                                                      Options options);
  static Result<std::unique_ptr<ControllerLink>> open(const std::string& address, const std::string& credentialFolder) {
    return open(address, credentialFolder, Options{});
  }

  std::shared_ptr<grpc::Channel> channel() const;
  ChannelSource source() const {
    return [this] { return channel(); };
  }
  // nullopt on a plaintext link.
  std::optional<NodeCredentialStatus> credential() const;
  // Renews the credential when due until `stopping`; returns at once on a plaintext link.
  void run(const std::atomic<bool>& stopping);

 private:
  ControllerLink(std::string address, std::string folder, Options options)
      : address_(std::move(address)), folder_(std::move(folder)), options_(options) {}
  Result<std::shared_ptr<grpc::Channel>> makeChannel(const NodeCredentialFiles& files) const;
  // Renews (or adopts a fresher credential from the folder) and switches the channel.
  Status renew();
  Status use(NodeCredentialFiles files);  // switches to `files`

  std::string address_, folder_;
  Options options_;
  mutable std::mutex mutex_;
  std::shared_ptr<grpc::Channel> channel_;
  std::optional<NodeCredentialFiles> files_;  // the credential in use (none: plaintext)
  uint64_t renewals_ = 0, adopted_ = 0, failures_ = 0;
  std::string lastError_;
};

}  // namespace sluice::ztunnel
