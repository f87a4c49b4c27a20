#include "discovery/node_revocations.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "sluice/common/files.h"
#include "sluice/common/k8s_names.h"
#include "sluice/common/pki.h"

namespace sluice::controller {

Result<NodeRevocations> NodeRevocations::parse(std::string_view text, const std::string& origin) {
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return fail(fmt::format("{}: not valid JSON", origin));
  if (!doc.is_object()) return fail(fmt::format("{}: must be an object {{\"revokedNodes\": [...]}}", origin));
  for (const auto& [key, _] : doc.items()) {
    if (key != "revokedNodes") return fail(fmt::format("{}: unknown field '{}'", origin, key));
  }
  NodeRevocations out;
  auto list = doc.find("revokedNodes");
  if (list == doc.end()) return out;
  if (!list->is_array()) return fail(fmt::format("{}: revokedNodes must be a list", origin));
  for (size_t i = 0; i < list->size(); ++i) {
    const auto& entry = (*list)[i];
    std::string where = fmt::format("{}: revokedNodes[{}]", origin, i);
    if (!entry.is_object()) return fail(where + ": must be an object with node and revokedAt");
    for (const auto& [key, _] : entry.items()) {
      if (key != "node" && key != "revokedAt") return fail(fmt::format("{}: unknown field '{}'", where, key));
    }
    auto node = entry.find("node");
    auto at = entry.find("revokedAt");
    if (node == entry.end() || !node->is_string() || !isDnsSubdomain(node->get<std::string>())) {
      return fail(where + ".node: must be a node name (a DNS-1123 subdomain)");
    }
    if (at == entry.end() || !at->is_number_integer() || at->get<int64_t>() < 0) {
      return fail(where + ".revokedAt: must be a non-negative integer (Unix seconds)");
    }
    if (!out.revokedAt_.emplace(node->get<std::string>(), at->get<int64_t>()).second) {
      return fail(fmt::format("{}.node: '{}' is listed twice", where, node->get<std::string>()));
    }
  }
  return out;
}

std::string NodeRevocations::serialize() const {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [node, at] : revokedAt_) list.push_back({{"node", node}, {"revokedAt", at}});
  return nlohmann::json{{"revokedNodes", list}}.dump(2) + "\n";
}

NodeRevocations NodeRevocations::with(const std::string& node, Clock::time_point at) const {
  NodeRevocations out = *this;
  out.revokedAt_[node] = std::chrono::duration_cast<std::chrono::seconds>(at.time_since_epoch()).count();
  return out;
}

Status NodeRevocations::check(const std::string& node, Clock::time_point issuedAt) const {
  auto revoked = pki::revocationCovering(revokedAt_, node, issuedAt);
  if (!revoked) return {};
  int64_t issued = std::chrono::duration_cast<std::chrono::seconds>(issuedAt.time_since_epoch()).count();
  return fail(fmt::format("node {} was revoked at {} (Unix seconds); its credential was issued at {}", node, *revoked, issued));
}

std::string revocationFileIn(const std::string& caDir) { return caDir + "/revoked-nodes.json"; }

config::v1::Resource revokedNodesResource(const NodeRevocations& revocations) {
  config::v1::Resource resource;
  resource.set_name(kRevokedNodesResource);
  auto* list = resource.mutable_revoked_nodes()->mutable_revoked_at_unix();
  std::string content;
  for (const auto& [node, at] : revocations.revokedAt()) {
    (*list)[node] = at;
    content += fmt::format("{}={};", node, at);
  }
  resource.set_version(fmt::format("{:016x}", std::hash<std::string>{}(content)));
  return resource;
}

Result<NodeRevocations> RevocationFile::read() const {
  std::error_code ec;
  if (!std::filesystem::exists(path_, ec)) return NodeRevocations{};
  SLUICE_TRY_ASSIGN(text, readFile(path_));
  return NodeRevocations::parse(text, path_);
}

Status RevocationFile::load() {
  SLUICE_TRY_ASSIGN(list, read());
  std::lock_guard lock(mutex_);
  current_ = std::make_shared<NodeRevocations>(std::move(list));
  std::error_code ec;
  seenMissing_ = !std::filesystem::exists(path_, ec);
  if (!seenMissing_) {
    seenTime_ = std::filesystem::last_write_time(path_, ec);
    seenSize_ = std::filesystem::file_size(path_, ec);
  }
  return {};
}

bool RevocationFile::refresh() {
  std::error_code ec;
  bool missing = !std::filesystem::exists(path_, ec);
  auto time = missing ? std::filesystem::file_time_type{} : std::filesystem::last_write_time(path_, ec);
  uintmax_t size = missing ? 0 : std::filesystem::file_size(path_, ec);
  {
    std::lock_guard lock(mutex_);
    if (missing == seenMissing_ && time == seenTime_ && size == seenSize_) return false;
    seenMissing_ = missing;
    seenTime_ = time;
    seenSize_ = size;
  }
  auto list = read();
  std::lock_guard lock(mutex_);
  if (!list) {
    // Keep enforcing what was in force: a bad edit must not lift revocations.
    if (list.error().message() != lastRefusal_) spdlog::error("revocations refused, the last good list stays: {}", list.error().message());
    lastRefusal_ = list.error().message();
    return false;
  }
  lastRefusal_.clear();
  current_ = std::make_shared<NodeRevocations>(std::move(*list));
  spdlog::info("revocations: {} node(s) revoked ({})", current_->revokedAt().size(), path_);
  return true;
}

std::shared_ptr<const NodeRevocations> RevocationFile::current() const {
  std::lock_guard lock(mutex_);
  return current_;
}

}  // namespace sluice::controller
