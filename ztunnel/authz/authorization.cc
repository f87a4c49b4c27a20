#include "authz/authorization.h"

#include "sluice/common/ip_block.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <charconv>
#include <cstring>

namespace sluice::ztunnel {
namespace v1 = config::v1;
namespace {

// Istio string matching: exact, "prefix*", "*suffix", or "*" (anything, but not nothing).
bool stringMatches(const std::string& pattern, const std::string& value) {
  if (pattern == "*") return !value.empty();
  if (!pattern.empty() && pattern.back() == '*') return value.rfind(pattern.substr(0, pattern.size() - 1), 0) == 0;
  if (!pattern.empty() && pattern.front() == '*') {
    std::string suffix = pattern.substr(1);
    return value.size() >= suffix.size() && value.compare(value.size() - suffix.size(), suffix.size(), suffix) == 0;
  }
  return pattern == value;
}

bool anyMatches(const google::protobuf::RepeatedPtrField<std::string>& patterns, const std::string& value) {
  for (const auto& p : patterns)
    if (stringMatches(p, value)) return true;
  return false;
}

// "10.0.0.0/8" or a single address; false for anything unparsable (fail closed for ALLOW
// rules: an unparsable block never admits).
// A block the controller refused can't arrive here (it validates at load with the same parser).
bool inBlock(const std::string& block, const std::string& ip) {
  auto parsed = parseIpBlock(block);
  return parsed && blockContains(*parsed, ip);
}

bool anyBlock(const google::protobuf::RepeatedPtrField<std::string>& blocks, const std::string& ip) {
  for (const auto& b : blocks)
    if (inBlock(b, ip)) return true;
  return false;
}

// The namespace in a principal "td/ns/<ns>/sa/<sa>".
std::string namespaceOf(const std::string& principal) {
  size_t ns = principal.find("/ns/");
  if (ns == std::string::npos) return "";
  size_t start = ns + 4, end = principal.find('/', start);
  return principal.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

bool sourceMatches(const v1::AuthorizationPolicy::Source& s, const ConnectionAttributes& c) {
  const std::string ns = namespaceOf(c.principal);
  if (s.principals_size() > 0 && (c.principal.empty() || !anyMatches(s.principals(), c.principal))) return false;
  if (s.not_principals_size() > 0 && !c.principal.empty() && anyMatches(s.not_principals(), c.principal)) return false;
  if (s.namespaces_size() > 0 && (ns.empty() || !anyMatches(s.namespaces(), ns))) return false;
  if (s.not_namespaces_size() > 0 && !ns.empty() && anyMatches(s.not_namespaces(), ns)) return false;
  if (s.ip_blocks_size() > 0 && !anyBlock(s.ip_blocks(), c.sourceIp)) return false;
  if (s.not_ip_blocks_size() > 0 && anyBlock(s.not_ip_blocks(), c.sourceIp)) return false;
  return true;
}

bool operationMatches(const v1::AuthorizationPolicy::Operation& o, const ConnectionAttributes& c) {
  std::string port = std::to_string(c.destinationPort);
  if (o.ports_size() > 0 && !anyMatches(o.ports(), port)) return false;
  if (o.not_ports_size() > 0 && anyMatches(o.not_ports(), port)) return false;
  return true;
}

bool policyMatches(const v1::AuthorizationPolicy& p, const ConnectionAttributes& c) {
  for (const auto& rule : p.rules()) {
    bool from = rule.from_size() == 0;
    for (const auto& s : rule.from()) from = from || sourceMatches(s, c);
    bool to = rule.to_size() == 0;
    for (const auto& o : rule.to()) to = to || operationMatches(o, c);
    if (from && to) return true;
  }
  return false;
}

std::string nameOf(const v1::AuthorizationPolicy& p) { return p.namespace_() + "/" + p.name(); }

}  // namespace

std::vector<const v1::AuthorizationPolicy*> applicablePolicies(const std::vector<const v1::AuthorizationPolicy*>& all,
                                                               const std::string& ns,
                                                               const std::map<std::string, std::string>& labels,
                                                               const std::string& rootNamespace) {
  std::vector<const v1::AuthorizationPolicy*> out;
  for (const auto* p : all) {
    if (p->namespace_() != ns && p->namespace_() != rootNamespace) continue;
    bool selected = true;
    for (const auto& [k, v] : p->selector().match_labels()) {
      auto it = labels.find(k);
      selected = selected && it != labels.end() && it->second == v;
    }
    if (selected) out.push_back(p);
  }
  return out;
}

AuthzResult authorize(const std::vector<const v1::AuthorizationPolicy*>& policies, const ConnectionAttributes& c) {
  for (const auto* p : policies) {
    if (p->action() == v1::AuthorizationPolicy::DENY && policyMatches(*p, c)) {
      return {false, nameOf(*p), fmt::format("denied by DENY policy {}", nameOf(*p))};
    }
  }
  bool anyAllow = false;
  for (const auto* p : policies) {
    if (p->action() != v1::AuthorizationPolicy::ALLOW) continue;
    anyAllow = true;
    if (policyMatches(*p, c)) return {true, nameOf(*p), fmt::format("allowed by ALLOW policy {}", nameOf(*p))};
  }
  if (anyAllow) return {false, "", "no ALLOW policy matches (with ALLOW policies present, anything else is denied)"};
  return {true, "", "no policy applies"};
}

}  // namespace sluice::ztunnel
