#include "sluice/common/socket_address.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace sluice {

Result<SocketAddress> SocketAddress::fromIp(std::string_view ip, uint16_t port) {
  SocketAddress out;
  std::string text(ip);
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out.storage_);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out.storage_);
  if (::inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    return out;
  }
  if (::inet_pton(AF_INET6, text.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    return out;
  }
  return fail("'" + text + "' is not an IPv4 or IPv6 address");
}

Result<SocketAddress> SocketAddress::parse(std::string_view text) {
  std::string_view host, port;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return fail("'" + std::string(text) + "': expected [IPv6]:port");
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    if (host.find(':') == std::string_view::npos) {
      return fail("'" + std::string(text) + "': brackets are only for IPv6 addresses");
    }
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return fail("'" + std::string(text) + "': missing :port");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return fail("'" + std::string(text) + "': write IPv6 addresses as [address]:port");
    }
  }
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value > 65535) {
    return fail("'" + std::string(text) + "': port must be a number from 0 to 65535");
  }
  auto out = fromIp(host, static_cast<uint16_t>(value));
  if (!out) return fail(std::move(out.error()).context("'" + std::string(text) + "'"));
  return out;
}

SocketAddress SocketAddress::fromSockaddr(const sockaddr* sa, socklen_t length) {
  SocketAddress out;
  std::memcpy(&out.storage_, sa, std::min<size_t>(length, sizeof(out.storage_)));
  return out;
}

uint16_t SocketAddress::port() const {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
  if (family() == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
  return 0;
}

socklen_t SocketAddress::length() const {
  return family() == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

namespace {

// An IPv4 address in dotted-quad text, as inet_ntop writes it, but by hand: glibc's inet_ntop
// formats IPv4 through sprintf, which was ~2% of the tunnel's CPU in the L7 benchmark (routing
// names a few addresses per request).
void appendIpv4(std::string& out, const in_addr& address) {
  const auto* octets = reinterpret_cast<const uint8_t*>(&address.s_addr);  // network order
  for (int i = 0; i < 4; ++i) {
    if (i > 0) out.push_back('.');
    unsigned v = octets[i];
    if (v >= 100) out.push_back(static_cast<char>('0' + v / 100));
    if (v >= 10) out.push_back(static_cast<char>('0' + v / 10 % 10));
    out.push_back(static_cast<char>('0' + v % 10));
  }
}

void appendPort(std::string& out, uint16_t port) {
  char digits[8];
  auto end = std::to_chars(digits, digits + sizeof(digits), port).ptr;
  out.append(digits, end);
}

}  // namespace

std::string SocketAddress::ip() const {
  if (family() == AF_INET) {
    std::string out;
    out.reserve(15);
    appendIpv4(out, reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr);
    return out;
  }
  char buf[INET6_ADDRSTRLEN] = {};
  if (family() == AF_INET6) {
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_addr, buf, sizeof(buf));
  }
  return buf;
}

std::string SocketAddress::toString() const {
  std::string out;
  if (family() == AF_INET) {
    out.reserve(21);
    appendIpv4(out, reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr);
  } else if (family() == AF_INET6) {
    out = "[" + ip() + "]";
  } else {
    out = ip();  // "" (an unset address), as before
  }
  out.push_back(':');
  appendPort(out, port());
  return out;
}

namespace {
SocketAddress addressOf(int fd, bool peer) {
  sockaddr_storage ss{};
  socklen_t length = sizeof(ss);
  int rc = peer ? ::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &length)
                : ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &length);
  if (rc != 0) return {};
  return SocketAddress::fromSockaddr(reinterpret_cast<sockaddr*>(&ss), length);
}
}  // namespace

SocketAddress peerAddress(int fd) { return addressOf(fd, true); }
SocketAddress localAddress(int fd) { return addressOf(fd, false); }

}  // namespace sluice
