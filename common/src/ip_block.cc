#include "sluice/common/ip_block.h"

#include <arpa/inet.h>

#include <charconv>

namespace sluice {

namespace {

// The address `text` as bytes in `out`; its family, or 0 when it is none.
int parseAddress(std::string_view text, std::array<uint8_t, 16>& out) {
  if (text.empty() || text.size() > INET6_ADDRSTRLEN) return 0;
  std::string s(text);  // inet_pton needs a terminator
  if (::inet_pton(AF_INET, s.c_str(), out.data()) == 1) return AF_INET;
  if (::inet_pton(AF_INET6, s.c_str(), out.data()) == 1) return AF_INET6;
  return 0;
}

}  // namespace

std::expected<IpBlock, std::string> parseIpBlock(std::string_view text) {
  IpBlock block;
  size_t slash = text.find('/');
  block.family = parseAddress(text.substr(0, slash), block.bytes);
  if (block.family == 0) return std::unexpected("'" + std::string(text) + "' is not an IP address or CIDR block");
  int maxBits = block.family == AF_INET ? 32 : 128;
  block.prefixBits = maxBits;
  if (slash != std::string_view::npos) {
    std::string_view bits = text.substr(slash + 1);
    auto [end, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), block.prefixBits);
    if (bits.empty() || ec != std::errc() || end != bits.data() + bits.size() || block.prefixBits < 0 ||
        block.prefixBits > maxBits) {
      return std::unexpected("'" + std::string(text) + "': the prefix length must be 0.." + std::to_string(maxBits));
    }
  }
  return block;
}

bool blockContains(const IpBlock& block, std::string_view ip) {
  std::array<uint8_t, 16> have{};
  if (parseAddress(ip, have) != block.family) return false;
  for (int i = 0; i < block.prefixBits; ++i) {
    int byte = i / 8, bit = 7 - i % 8;
    if (((block.bytes[byte] >> bit) & 1) != ((have[byte] >> bit) & 1)) return false;
  }
  return true;
}

}  // namespace sluice
