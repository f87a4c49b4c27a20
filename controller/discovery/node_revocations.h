// Revoked nodes: the controller's list of nodes whose credentials it no longer honours.
//
// A revocation names a node and a time. Every credential of that node issued at or before the
// time is refused: on the mTLS port (no discovery, no workload certificate, no renewal) and,
// through the configuration pushed to every node, by the tunnels as HBONE peers (workload
// certificates the CA issued to that node). A credential issued after it (the operator
// re-admits the node with `sluice-controller node-credential`) is honoured again.
//
// The list is a JSON file in the CA folder, written by `sluice-controller revoke-node`:
//   {"revokedNodes": [{"node": "node1", "revokedAt": 1796000000}]}      (revokedAt: Unix seconds)
// It is read as hostile input: anything else is refused with the field named.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "sluice/common/error.h"
#include "sluice/config/v1/config.pb.h"

namespace sluice::controller {

class NodeRevocations {
 public:
  using Clock = std::chrono::system_clock;
  // `origin` names the input in errors (a file path).
  static Result<NodeRevocations> parse(std::string_view json, const std::string& origin);
  std::string serialize() const;

  // This list plus `node` revoked at `at` (a later revocation of a listed node moves its time).
  NodeRevocations with(const std::string& node, Clock::time_point at) const;
  // Fails, naming the revocation, when a credential of `node` issued at `issuedAt` is revoked.
  Status check(const std::string& node, Clock::time_point issuedAt) const;
  // Revocation time per node, whole seconds.
  const std::map<std::string, int64_t>& revokedAt() const { return revokedAt_; }
  bool empty() const { return revokedAt_.empty(); }

 private:
  std::map<std::string, int64_t> revokedAt_;
};

// The revocation file as the running controller sees it: re-read when it changes, the last
// good list kept when a change is refused (and the refusal reported once).
class RevocationFile {
 public:
  explicit RevocationFile(std::string path) : path_(std::move(path)) {}
  // Reads the file now. A missing file is an empty list; an unreadable or invalid one is an
  // error (the controller refuses to start rather than forget revocations).
  Status load();
  // Re-reads the file if its size or modification time changed; false when nothing changed.
  bool refresh();
  std::shared_ptr<const NodeRevocations> current() const;
  const std::string& path() const { return path_; }

 private:
  Result<NodeRevocations> read() const;
  std::string path_;
  mutable std::mutex mutex_;
  std::shared_ptr<const NodeRevocations> current_ = std::make_shared<NodeRevocations>();
  std::filesystem::file_time_type seenTime_{};
  uintmax_t seenSize_ = 0;
  bool seenMissing_ = true;
  std::string lastRefusal_;
};

// The file's place in a CA folder.
std::string revocationFileIn(const std::string& caDir);

// The list as the resource every node receives (name kRevokedNodesResource; its version changes
// with its content), so tunnels refuse workload certificates issued to a revoked node.
inline constexpr const char* kRevokedNodesResource = "RevokedNodes/sluice/nodes";
config::v1::Resource revokedNodesResource(const NodeRevocations& revocations);

}  // namespace sluice::controller
