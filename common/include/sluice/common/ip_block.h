// An AuthorizationPolicy ipBlock: an address ("10.1.2.3", "fd00::1") or a CIDR block
// ("10.0.0.0/8", "fd00::/64"). One parser for the controller, which refuses a malformed block at
// load (a mistyped DENY block would otherwise be a rule that never matches: fail open), and the
// tunnel, which matches addresses against the blocks it was sent.
#pragma once

#include <array>
#include <cstdint>
#include <expected>
#include <string>
#include <string_view>

namespace sluice {

struct IpBlock {
  int family = 0;  // AF_INET or AF_INET6
  std::array<uint8_t, 16> bytes{};
  int prefixBits = 0;  // 0..32 or 0..128
};

// The block `text` names, or why it names none.
std::expected<IpBlock, std::string> parseIpBlock(std::string_view text);
// Whether the address `ip` (text, either family) is inside `block` (never across families).
bool blockContains(const IpBlock& block, std::string_view ip);

}  // namespace sluice
