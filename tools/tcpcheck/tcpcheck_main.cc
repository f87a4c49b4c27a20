// sluice-tcpcheck: a TCP echo server and a byte-exact checking client, for tests and the demo.
//
//   sluice-tcpcheck serve --listen [::]:8080
//       echoes every connection (IPv4 and IPv6); prints "listening <addr>" once bound.
//   sluice-tcpcheck send --to 10.244.1.2:8080 --bytes 1048576 [--seed 7]
//       [--mark N] sets SO_MARK on the socket (as the tunnel's own sockets carry).
//       sends a reproducible pseudo-random stream, half-closes, reads the echo to EOF and checks
//       it byte for byte; prints one JSON line; exit 0 when every byte came back in order,
//       1 on a mismatch or short echo, 2 when the connection failed.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "sluice/common/socket_address.h"
#include "sluice/common/unique_fd.h"
#include "tcpcheck/byte_stream.h"

namespace {

using sluice::SocketAddress;
using sluice::UniqueFd;

constexpr size_t kChunk = 64 * 1024;

bool writeAll(int fd, const unsigned char* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

void echoConnection(UniqueFd conn) {
  std::vector<unsigned char> buf(kChunk);
  for (;;) {
    ssize_t n = ::recv(conn.get(), buf.data(), buf.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (!writeAll(conn.get(), buf.data(), static_cast<size_t>(n))) return;
  }
  ::shutdown(conn.get(), SHUT_WR);  // carry the client's half-close back
}

int serve(const std::string& listen) {
  auto address = SocketAddress::parse(listen);
  if (!address) {
    fmt::print(stderr, "serve: {}\n", address.error().message());
    return 2;
  }
  UniqueFd fd(::socket(address->family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  int one = 1, zero = 0;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (address->family() == AF_INET6) {
    ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));  // dual stack
  }
  if (::bind(fd.get(), address->sockaddrPtr(), address->length()) != 0 || ::listen(fd.get(), 1024) != 0) {
    fmt::print(stderr, "serve: bind/listen {}: {}\n", listen, std::strerror(errno));
    return 2;
  }
  fmt::print("listening {}\n", address->toString());
  std::fflush(stdout);
  for (;;) {
    int conn = ::accept4(fd.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      fmt::print(stderr, "serve: accept: {}\n", std::strerror(errno));
      return 2;
    }
    std::thread(echoConnection, UniqueFd(conn)).detach();
  }
}

int send(const std::string& to, uint64_t bytes, uint64_t seed, uint32_t mark) {
  auto address = SocketAddress::parse(to);
  if (!address) {
    fmt::print(stderr, "send: {}\n", address.error().message());
    return 2;
  }
  UniqueFd fd(::socket(address->family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (mark != 0 && ::setsockopt(fd.get(), SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) != 0) {
    fmt::print("{{\"ok\":false,\"error\":\"SO_MARK: {}\"}}\n", std::strerror(errno));
    return 2;
  }
  auto start = std::chrono::steady_clock::now();
  if (::connect(fd.get(), address->sockaddrPtr(), address->length()) != 0) {
    fmt::print("{{\"ok\":false,\"error\":\"connect {}: {}\"}}\n", to, std::strerror(errno));
    return 2;
  }
  std::atomic<bool> writeFailed{false};
  std::thread writer([&] {
    sluice::tcpcheck::ByteStream stream(seed);
    std::vector<unsigned char> buf(kChunk);
    for (uint64_t sent = 0; sent < bytes;) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), bytes - sent));
      stream.fill(buf.data(), n);
      if (!writeAll(fd.get(), buf.data(), n)) {
        writeFailed = true;
        return;
      }
      sent += n;
    }
    ::shutdown(fd.get(), SHUT_WR);
  });
  sluice::tcpcheck::ByteStream expected(seed);
  std::vector<unsigned char> got(kChunk), want(kChunk);
  uint64_t received = 0;
  int64_t mismatchAt = -1;
  std::string error;
  for (;;) {
    ssize_t n = ::recv(fd.get(), got.data(), got.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = std::strerror(errno);
      break;
    }
    if (n == 0) break;
    size_t len = static_cast<size_t>(n);
    size_t comparable = static_cast<size_t>(std::min<uint64_t>(len, bytes > received ? bytes - received : 0));
    expected.fill(want.data(), comparable);
    if (mismatchAt < 0) {
      for (size_t i = 0; i < comparable; ++i) {
        if (got[i] != want[i]) {
          mismatchAt = static_cast<int64_t>(received + i);
          break;
        }
      }
      if (comparable < len) mismatchAt = static_cast<int64_t>(received + comparable);  // extra bytes
    }
    received += len;
  }
  writer.join();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  bool ok = error.empty() && !writeFailed && mismatchAt < 0 && received == bytes;
  fmt::print("{{\"ok\":{},\"to\":\"{}\",\"bytes\":{},\"received\":{},\"first_mismatch\":{},"
             "\"seconds\":{:.6f},\"error\":\"{}\"}}\n",
             ok, address->toString(), bytes, received, mismatchAt, seconds,
             writeFailed ? "write failed" : error);
  if (!error.empty() || writeFailed) return 2;
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"TCP echo server and byte-exact checking client"};
  app.require_subcommand(1);
  std::string listen = "[::]:8080";
  auto* serveCmd = app.add_subcommand("serve", "echo every connection");
  serveCmd->add_option("--listen", listen, "address:port to listen on")->capture_default_str();
  std::string to;
  uint64_t bytes = 1 << 20, seed = 1;
  uint32_t mark = 0;
  auto* sendCmd = app.add_subcommand("send", "send a stream and check its echo");
  sendCmd->add_option("--to", to, "address:port of the echo server")->required();
  sendCmd->add_option("--bytes", bytes, "how many bytes to send")->capture_default_str();
  sendCmd->add_option("--seed", seed, "seed of the byte stream")->capture_default_str();
  sendCmd->add_option("--mark", mark, "SO_MARK for the socket (0: none)");
  CLI11_PARSE(app, argc, argv);
  if (serveCmd->parsed()) return serve(listen);
  return send(to, bytes, seed, mark);
}
