#include "sluice/common/k8s_names.h"

namespace sluice {

bool isDnsLabel(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) return false;
  }
  return s.front() != '-' && s.back() != '-';
}

bool isDnsSubdomain(std::string_view s) {
  if (!isDnsLabel(s)) return false;
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    if (s[i] == '.' && (s[i + 1] == '.' || s[i + 1] == '-' || (i > 0 && s[i - 1] == '-'))) return false;
  }
  return s.front() != '.' && s.back() != '.';
}

std::optional<WorkloadIdentity> parseWorkloadIdentity(std::string_view id, std::string_view trustDomain) {
  auto take = [&id](std::string_view prefix) {
    if (!id.starts_with(prefix)) return false;
    id.remove_prefix(prefix.size());
    return true;
  };
  if (!take("spiffe://") || !take(trustDomain) || !take("/ns/")) return std::nullopt;
  size_t sa = id.find("/sa/");
  if (sa == std::string_view::npos) return std::nullopt;
  std::string_view ns = id.substr(0, sa), account = id.substr(sa + 4);
  if (!isDnsLabel(ns) || ns.find('.') != std::string_view::npos || !isDnsSubdomain(account)) return std::nullopt;
  return WorkloadIdentity{std::string(ns), std::string(account)};
}

}  // namespace sluice
