#include "capture/pod_capture_plan.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <charconv>
#include <cstring>

namespace sluice::agent {
namespace {

std::vector<std::string_view> splitList(std::string_view text) {
  std::vector<std::string_view> items;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view item = text.substr(start, end - start);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (!item.empty()) items.push_back(item);
    start = end + 1;
  }
  return items;
}

Status parsePorts(const std::map<std::string, std::string>& annotations, const char* key,
                  uint16_t (&out)[SLUICE_MAX_EXCLUDED_PORTS]) {
  auto it = annotations.find(key);
  if (it == annotations.end()) return {};
  auto items = splitList(it->second);
  if (items.size() > SLUICE_MAX_EXCLUDED_PORTS) {
    return fail(fmt::format("annotation {}: {} ports listed, at most {} are supported", key,
                            items.size(), SLUICE_MAX_EXCLUDED_PORTS));
  }
  for (size_t i = 0; i < items.size(); ++i) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(items[i].data(), items[i].data() + items[i].size(), value);
    if (ec != std::errc() || end != items[i].data() + items[i].size() || value == 0 || value > 65535) {
      return fail(fmt::format("annotation {}: '{}' is not a port (1-65535)", key, items[i]));
    }
    out[i] = static_cast<uint16_t>(value);
  }
  return {};
}

}  // namespace

Result<std::array<uint8_t, 16>> addressBytes(std::string_view ip) {
  std::array<uint8_t, 16> out{};
  std::string text(ip);
  in_addr v4;
  if (::inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    out[10] = 0xff;
    out[11] = 0xff;
    std::memcpy(out.data() + 12, &v4, 4);
    return out;
  }
  if (::inet_pton(AF_INET6, text.c_str(), out.data()) == 1) return out;
  return fail(fmt::format("'{}' is not an IP address", ip));
}

Result<PodCapturePlan> planPodCapture(const PodCaptureSpec& spec) {
  PodCapturePlan plan;
  if (auto it = spec.labels.find(kDataplaneModeLabel); it != spec.labels.end() && it->second == "none") {
    plan.optedOut = true;
    plan.optOutReason = fmt::format("label {}={}", kDataplaneModeLabel, it->second);
    return plan;
  }
  if (auto it = spec.annotations.find(kCaptureAnnotation); it != spec.annotations.end()) {
    if (it->second == "disabled") {
      plan.optedOut = true;
      plan.optOutReason = fmt::format("annotation {}={}", kCaptureAnnotation, it->second);
      return plan;
    }
    if (it->second != "enabled") {
      return fail(fmt::format("annotation {}: '{}' is neither 'enabled' nor 'disabled'",
                              kCaptureAnnotation, it->second));
    }
  }
  if (spec.addresses.empty()) return fail("pod has no addresses");
  if (spec.addresses.size() > SLUICE_MAX_POD_ADDRS) {
    return fail(fmt::format("pod has {} addresses, at most {} are supported", spec.addresses.size(),
                            SLUICE_MAX_POD_ADDRS));
  }
  for (size_t i = 0; i < spec.addresses.size(); ++i) {
    auto bytes = addressBytes(spec.addresses[i]);
    if (!bytes) return fail(std::move(bytes.error()).context("pod address"));
    std::memcpy(plan.pod.addrs[i], bytes->data(), 16);
  }
  plan.pod.addr_count = static_cast<uint32_t>(spec.addresses.size());
  SLUICE_TRY(parsePorts(spec.annotations, kExcludeOutboundPorts, plan.pod.exclude_outbound_ports), "exclusions");
  SLUICE_TRY(parsePorts(spec.annotations, kExcludeInboundPorts, plan.pod.exclude_inbound_ports), "exclusions");

  if (auto it = spec.annotations.find(kExcludeOutboundRanges); it != spec.annotations.end()) {
    for (std::string_view item : splitList(it->second)) {
      size_t slash = item.find('/');
      auto bad = [&] {
        return fail(fmt::format("annotation {}: '{}' is not a CIDR (address/bits)", kExcludeOutboundRanges, item));
      };
      if (slash == std::string_view::npos) return bad();
      auto bytes = addressBytes(item.substr(0, slash));
      if (!bytes) return bad();
      bool v4 = item.substr(0, slash).find(':') == std::string_view::npos;
      std::string_view bitsText = item.substr(slash + 1);
      unsigned bits = 0;
      auto [end, ec] = std::from_chars(bitsText.data(), bitsText.data() + bitsText.size(), bits);
      if (ec != std::errc() || end != bitsText.data() + bitsText.size() || bits > (v4 ? 32u : 128u)) {
        return bad();
      }
      CaptureCidr cidr{};
      std::memcpy(cidr.addr, bytes->data(), 16);
      cidr.prefixBits = v4 ? 96 + bits : bits;
      plan.excludedCidrs.push_back(cidr);
    }
  }
  return plan;
}

}  // namespace sluice::agent
