#include "authz/peer_authentication.h"

#include <algorithm>

namespace sluice::ztunnel {
namespace v1 = config::v1;

namespace {

std::string nameOf(const v1::PeerAuthentication& p) { return p.namespace_() + "/" + p.name(); }

bool selects(const v1::PeerAuthentication& p, const std::map<std::string, std::string>& labels) {
  for (const auto& [k, v] : p.selector().match_labels()) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

}  // namespace

MtlsDecision effectiveMtlsMode(const std::vector<std::shared_ptr<const v1::PeerAuthentication>>& all,
                               const std::string& ns, const std::map<std::string, std::string>& labels, uint16_t port,
                               const std::string& rootNamespace) {
  std::vector<const v1::PeerAuthentication*> sorted;
  for (const auto& p : all) sorted.push_back(p.get());
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return nameOf(*a) < nameOf(*b); });
  const v1::PeerAuthentication *workload = nullptr, *namespaceWide = nullptr, *mesh = nullptr;
  for (const auto* p : sorted) {
    bool hasSelector = p->selector().match_labels_size() > 0;
    if (p->namespace_() == ns && hasSelector && selects(*p, labels) && workload == nullptr) workload = p;
    if (p->namespace_() == ns && !hasSelector && namespaceWide == nullptr) namespaceWide = p;
    if (p->namespace_() == rootNamespace && !hasSelector && mesh == nullptr) mesh = p;
  }
  // Most specific first; UNSET falls through to the next level.
  std::vector<std::pair<const v1::PeerAuthentication*, v1::PeerAuthentication::Mode>> levels;
  if (workload != nullptr) {
    auto portMode = workload->port_level_mtls().find(port);
    if (portMode != workload->port_level_mtls().end()) levels.emplace_back(workload, portMode->second);
    levels.emplace_back(workload, workload->mode());
  }
  if (namespaceWide != nullptr) levels.emplace_back(namespaceWide, namespaceWide->mode());
  if (mesh != nullptr) levels.emplace_back(mesh, mesh->mode());
  for (const auto& [policy, mode] : levels) {
    if (mode == v1::PeerAuthentication::UNSET) continue;
    return {mode == v1::PeerAuthentication::STRICT ? MtlsMode::kStrict : MtlsMode::kPermissive, nameOf(*policy)};
  }
  return {};
}

}  // namespace sluice::ztunnel
