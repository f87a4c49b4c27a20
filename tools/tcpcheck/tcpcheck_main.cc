// sluice-tcpcheck: a TCP echo server and a byte-exact checking client, for tests and the demo.
//
//   sluice-tcpcheck serve --listen [::]:8080
//       echoes every connection (IPv4 and IPv6); prints "listening <addr>" once bound.
//   sluice-tcpcheck send --to 10.244.1.2:8080 --bytes 1048576 [--seed 7]
//       [--mark N] sets SO_MARK on the socket (as the tunnel's own sockets carry).
//       sends a reproducible pseudo-random stream, half-closes, reads the echo to EOF and checks
//       it byte for byte; prints one JSON line; exit 0 when every byte came back in order,
//       1 on a mismatch or short echo, 2 when the connection failed.
//   sluice-tcpcheck pingpong --to ADDR --count N [--size B]   latency percentiles (echo checked)
//   sluice-tcpcheck crr --to ADDR [--to ADDR2...] [--seconds S] [--threads T]
//       connect+1-byte echo+close rate (several targets: taken in turn)
//   sluice-tcpcheck streams --to ADDR --count N --seconds S [--interval-ms I]
//       N long-lived connections each echoing 16 checked bytes every I ms (50); one that ends is
//       recorded (its steady-clock time) and opened again
//   crr and streams end early on SIGTERM (still printing their line), so a test can run them
//   for exactly as long as it needs load.
//   sluice-tcpcheck verify --listen ADDR [--seed S]           one-way receiver checking bytes;
//   sluice-tcpcheck send --one-way --to ADDR --bytes N        ... and its sender
//   sluice-tcpcheck hold --to ADDR --count N                  hold N echo-checked connections
//       until stdin closes
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstring>
#include <mutex>
#include <thread>
#include <unordered_map>
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

// One echoed connection of the epoll server. `pending` holds bytes read but not yet written
// back; while it is non-empty the connection stops reading (backpressure, bounded memory).
struct EchoConnection {
  UniqueFd fd;
  std::string pending;
  bool peerClosed = false;
};

// Single-threaded epoll echo server: scales to many thousands of connections (tests hold
// 10,000) without a thread each. Carries a client's half-close back once its bytes are echoed.
int serve(const std::string& listen) {
  auto address = SocketAddress::parse(listen);
  if (!address) {
    fmt::print(stderr, "serve: {}\n", address.error().message());
    return 2;
  }
  UniqueFd fd(::socket(address->family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  int one = 1, zero = 0;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (address->family() == AF_INET6) {
    ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));  // dual stack
  }
  if (::bind(fd.get(), address->sockaddrPtr(), address->length()) != 0 || ::listen(fd.get(), 4096) != 0) {
    fmt::print(stderr, "serve: bind/listen {}: {}\n", listen, std::strerror(errno));
    return 2;
  }
  UniqueFd epoll(::epoll_create1(EPOLL_CLOEXEC));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd.get();
  ::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, fd.get(), &ev);
  fmt::print("listening {}\n", address->toString());
  std::fflush(stdout);
  std::unordered_map<int, EchoConnection> conns;
  std::vector<unsigned char> buf(kChunk);
  auto drop = [&](int c) {
    ::epoll_ctl(epoll.get(), EPOLL_CTL_DEL, c, nullptr);
    conns.erase(c);
  };
  auto watch = [&](EchoConnection& c) {
    epoll_event e{};
    e.events = c.pending.empty() ? (c.peerClosed ? 0u : uint32_t(EPOLLIN)) : uint32_t(EPOLLOUT);
    e.data.fd = c.fd.get();
    ::epoll_ctl(epoll.get(), EPOLL_CTL_MOD, c.fd.get(), &e);
  };
  epoll_event events[256];
  for (;;) {
    int n = ::epoll_wait(epoll.get(), events, 256, -1);
    if (n < 0 && errno == EINTR) continue;
    for (int i = 0; i < n; ++i) {
      int efd = events[i].data.fd;
      if (efd == fd.get()) {
        for (;;) {
          int c = ::accept4(fd.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
          if (c < 0) break;
          conns.emplace(c, EchoConnection{UniqueFd(c), {}, false});
          epoll_event e{};
          e.events = EPOLLIN;
          e.data.fd = c;
          ::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, c, &e);
        }
        continue;
      }
      auto it = conns.find(efd);
      if (it == conns.end()) continue;
      EchoConnection& c = it->second;
      if (!c.pending.empty()) {
        ssize_t w = ::send(efd, c.pending.data(), c.pending.size(), MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN) {
          drop(efd);
          continue;
        }
        if (w > 0) c.pending.erase(0, static_cast<size_t>(w));
      } else {
        ssize_t r = ::recv(efd, buf.data(), buf.size(), 0);
        if (r < 0 && errno == EAGAIN) continue;
        if (r < 0) {
          drop(efd);
          continue;
        }
        if (r == 0) {
          c.peerClosed = true;
        } else {
          ssize_t w = ::send(efd, buf.data(), static_cast<size_t>(r), MSG_NOSIGNAL);
          if (w < 0 && errno != EAGAIN) {
            drop(efd);
            continue;
          }
          size_t sent = w > 0 ? static_cast<size_t>(w) : 0;
          if (sent < static_cast<size_t>(r)) {
            c.pending.assign(reinterpret_cast<char*>(buf.data()) + sent, static_cast<size_t>(r) - sent);
          }
        }
      }
      if (c.peerClosed && c.pending.empty()) {
        ::shutdown(efd, SHUT_WR);  // carry the client's half-close back
        drop(efd);
        continue;
      }
      watch(c);
    }
  }
}

int connectTo(const SocketAddress& address, uint32_t mark = 0);

// Writes the first `bytes` of the stream of `seed`; `sent` tells how far it got. False when
// the connection failed.
bool writeStream(int fd, uint64_t bytes, uint64_t seed, uint64_t& sent) {
  sluice::tcpcheck::ByteStream stream(seed);
  std::vector<unsigned char> buf(kChunk);
  for (sent = 0; sent < bytes;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), bytes - sent));
    stream.fill(buf.data(), n);
    if (!writeAll(fd, buf.data(), n)) return false;
    sent += n;
  }
  return true;
}

// One-way receiver: checks every connection's bytes against the stream of `seed` as they
// arrive, and at the sender's half-close answers one line: "ok <bytes>" or "mismatch at <n>".
void verifyConnection(UniqueFd conn, uint64_t seed) {
  sluice::tcpcheck::ByteStream expected(seed);
  std::vector<unsigned char> got(kChunk), want(kChunk);
  uint64_t received = 0;
  int64_t mismatch = -1;
  for (;;) {
    ssize_t n = ::recv(conn.get(), got.data(), got.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    expected.fill(want.data(), static_cast<size_t>(n));
    if (mismatch < 0) {
      for (ssize_t i = 0; i < n; ++i) {
        if (got[static_cast<size_t>(i)] != want[static_cast<size_t>(i)]) {
          mismatch = static_cast<int64_t>(received) + i;
          break;
        }
      }
    }
    received += static_cast<uint64_t>(n);
  }
  std::string verdict = mismatch < 0 ? fmt::format("ok {}\n", received) : fmt::format("mismatch at {}\n", mismatch);
  writeAll(conn.get(), reinterpret_cast<const unsigned char*>(verdict.data()), verdict.size());
}

int verifyServer(const std::string& listen, uint64_t seed) {
  auto address = SocketAddress::parse(listen);
  if (!address) return 2;
  UniqueFd fd(::socket(address->family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  int one = 1, zero = 0;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (address->family() == AF_INET6) ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
  if (::bind(fd.get(), address->sockaddrPtr(), address->length()) != 0 || ::listen(fd.get(), 128) != 0) {
    fmt::print(stderr, "verify: bind/listen {}: {}\n", listen, std::strerror(errno));
    return 2;
  }
  fmt::print("listening {}\n", address->toString());
  std::fflush(stdout);
  for (;;) {
    int conn = ::accept4(fd.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) continue;
    std::thread(verifyConnection, UniqueFd(conn), seed).detach();
  }
}

// One-way sender: `bytes` of the stream, half-close, then the receiver's verdict line.
int sendOneWay(const std::string& to, uint64_t bytes, uint64_t seed) {
  auto address = SocketAddress::parse(to);
  if (!address) return 2;
  auto start = std::chrono::steady_clock::now();
  UniqueFd fd(connectTo(*address));
  if (!fd) {
    fmt::print("{{\"ok\":false,\"error\":\"connect: {}\"}}\n", std::strerror(errno));
    return 2;
  }
  uint64_t sent = 0;
  if (!writeStream(fd.get(), bytes, seed, sent)) {
    fmt::print("{{\"ok\":false,\"error\":\"write failed after {} bytes\"}}\n", sent);
    return 2;
  }
  ::shutdown(fd.get(), SHUT_WR);
  std::string verdict;
  char c;
  while (::recv(fd.get(), &c, 1, 0) == 1 && c != '\n') verdict.push_back(c);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  bool ok = verdict == fmt::format("ok {}", bytes);
  fmt::print("{{\"ok\":{},\"bytes\":{},\"verdict\":\"{}\",\"seconds\":{:.6f}}}\n", ok, bytes, verdict, seconds);
  return ok ? 0 : 1;
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
    uint64_t sent = 0;
    if (!writeStream(fd.get(), bytes, seed, sent)) {
      writeFailed = true;
      return;
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

// Connects with SO_MARK when `mark` is set; -1 on failure (errno set).
int connectTo(const SocketAddress& address, uint32_t mark) {
  int fd = ::socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (mark != 0) ::setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark));
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (::connect(fd, address.sockaddrPtr(), address.length()) != 0) {
    int saved = errno;
    ::close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

bool readExactly(int fd, unsigned char* out, size_t n) {
  while (n > 0) {
    ssize_t r = ::recv(fd, out, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    out += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

// Request/response latency: `count` messages of `size` bytes, each echoed and checked before
// the next is sent. Prints p50/p99/max in microseconds.
int pingpong(const std::string& to, uint64_t count, size_t size) {
  auto address = SocketAddress::parse(to);
  if (!address) return 2;
  UniqueFd fd(connectTo(*address));
  if (!fd) {
    fmt::print("{{\"ok\":false,\"error\":\"connect: {}\"}}\n", std::strerror(errno));
    return 2;
  }
  sluice::tcpcheck::ByteStream stream(7);
  std::vector<unsigned char> msg(size), echo(size);
  std::vector<double> micros;
  micros.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    stream.fill(msg.data(), size);
    auto start = std::chrono::steady_clock::now();
    if (!writeAll(fd.get(), msg.data(), size) || !readExactly(fd.get(), echo.data(), size)) {
      fmt::print("{{\"ok\":false,\"error\":\"connection lost after {} messages\"}}\n", i);
      return 2;
    }
    micros.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count());
    if (echo != msg) {
      fmt::print("{{\"ok\":false,\"error\":\"message {} came back different\"}}\n", i);
      return 1;
    }
  }
  std::sort(micros.begin(), micros.end());
  auto at = [&micros](double q) { return micros.empty() ? 0.0 : micros[static_cast<size_t>(q * (micros.size() - 1))]; };
  fmt::print("{{\"ok\":true,\"messages\":{},\"p50_us\":{:.1f},\"p99_us\":{:.1f},\"max_us\":{:.1f}}}\n", count,
             at(0.5), at(0.99), micros.empty() ? 0.0 : micros.back());
  return 0;
}

// Set by SIGTERM: crr and streams finish what they do and report.
volatile std::sig_atomic_t stopRequested = 0;

template <typename TimePoint>
bool running(TimePoint end) {
  return stopRequested == 0 && std::chrono::steady_clock::now() < end;
}

// Nanoseconds on the steady clock (CLOCK_MONOTONIC): comparable with a test's own clock.
int64_t steadyNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// A failure as JSON: when (steady-clock ns) and what.
std::string failureJson(const char* what, int error) {
  return fmt::format("{{\"t_ns\":{},\"error\":\"{}: {}\"}}", steadyNanos(), what, std::strerror(error));
}

// Connection rate: for `seconds` (or exactly `count` connections when count > 0), each of
// `threads` threads connects, sends 1 byte, reads it back, closes (TCP_CRR), taking the targets
// in turn. The first failures are listed with their time, so a test can tell when they happened.
int crr(const std::vector<std::string>& to, double seconds, uint64_t count, unsigned threads) {
  std::vector<SocketAddress> targets;
  for (const auto& t : to) {
    auto address = SocketAddress::parse(t);
    if (!address) {
      fmt::print(stderr, "crr: {}\n", address.error().message());
      return 2;
    }
    targets.push_back(*address);
  }
  std::atomic<uint64_t> done{0}, failed{0};
  std::mutex mutex;
  std::vector<std::string> failures;  // the first 20
  auto start = std::chrono::steady_clock::now();
  auto end = start + std::chrono::duration<double>(seconds);
  auto run = [&](size_t next) {
    while (count > 0 ? done + failed < count && stopRequested == 0 : running(end)) {
      UniqueFd fd(connectTo(targets[next++ % targets.size()]));
      unsigned char byte = 'x', back = 0;
      const char* step = !fd ? "connect" : !writeAll(fd.get(), &byte, 1) ? "send" : !readExactly(fd.get(), &back, 1) ? "echo" : nullptr;
      if (step != nullptr) {
        int error = errno;
        ++failed;
        std::lock_guard lock(mutex);
        if (failures.size() < 20) failures.push_back(failureJson(step, error));
        continue;
      }
      ++done;
    }
  };
  std::vector<std::thread> pool;
  for (unsigned i = 0; i < threads; ++i) pool.emplace_back(run, size_t{i});
  for (auto& t : pool) t.join();
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  fmt::print("{{\"ok\":{},\"connections\":{},\"failed\":{},\"per_second\":{:.1f},\"failures\":[{}]}}\n",
             failed == 0, done.load(), failed.load(), done / elapsed, fmt::join(failures, ","));
  return failed == 0 ? 0 : 1;
}

// Long-lived connections: `count` threads, each holding one connection that echoes 16 bytes of
// its own byte stream every `interval`, checked. A connection that fails or ends is recorded with
// its time (steady-clock ns) and opened again; a reopen that fails is a failed new connection.
// Prints one JSON line after `seconds`; exit 0 when no echo came back wrong and no reopen failed.
int streams(const std::string& to, uint64_t count, double seconds, std::chrono::milliseconds interval) {
  auto address = SocketAddress::parse(to);
  if (!address) return 2;
  std::atomic<uint64_t> exchanges{0}, corrupt{0}, reopenFailures{0};
  std::mutex mutex;
  std::vector<int64_t> ends;
  std::vector<std::string> failures;
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  auto run = [&](uint64_t index) {
    timeval wait{10, 0};  // an echo slower than this counts as the connection's end
    auto open = [&] {
      UniqueFd fd(connectTo(*address));
      if (fd) ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof(wait));
      return fd;
    };
    UniqueFd fd = open();
    sluice::tcpcheck::ByteStream stream(index + 1);
    unsigned char message[16], echo[16];
    while (running(end)) {
      if (!fd) {
        int error = errno;
        ++reopenFailures;
        std::lock_guard lock(mutex);
        if (failures.size() < 20) failures.push_back(failureJson("connect", error));
      } else {
        stream.fill(message, sizeof(message));
        if (writeAll(fd.get(), message, sizeof(message)) && readExactly(fd.get(), echo, sizeof(echo))) {
          ++exchanges;
          if (std::memcmp(message, echo, sizeof(echo)) != 0) ++corrupt;
          std::this_thread::sleep_for(interval);
          continue;
        }
        std::lock_guard lock(mutex);
        ends.push_back(steadyNanos());
      }
      fd = open();
      stream = sluice::tcpcheck::ByteStream(index + 1);  // the echo server starts each connection afresh
    }
  };
  std::vector<std::thread> pool;
  for (uint64_t i = 0; i < count; ++i) pool.emplace_back(run, i);
  for (auto& t : pool) t.join();
  bool ok = corrupt == 0 && reopenFailures == 0;
  fmt::print("{{\"ok\":{},\"streams\":{},\"exchanges\":{},\"corrupt\":{},\"reopen_failures\":{},\"ends_ns\":[{}],"
             "\"failures\":[{}]}}\n",
             ok, count, exchanges.load(), corrupt.load(), reopenFailures.load(), fmt::join(ends, ","), fmt::join(failures, ","));
  return ok ? 0 : 1;
}

// Opens `count` connections, checks each with a 1-byte echo, prints "held N", then keeps them
// until stdin closes (or the process is killed).
int hold(const std::string& to, uint64_t count) {
  auto address = SocketAddress::parse(to);
  if (!address) return 2;
  std::vector<UniqueFd> held;
  held.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    UniqueFd fd(connectTo(*address));
    unsigned char byte = 'h', back = 0;
    if (!fd || !writeAll(fd.get(), &byte, 1) || !readExactly(fd.get(), &back, 1)) {
      fmt::print("failed after {}: {}\n", i, std::strerror(errno));
      std::fflush(stdout);
      return 2;
    }
    held.push_back(std::move(fd));
  }
  fmt::print("held {}\n", held.size());
  std::fflush(stdout);
  char buf[64];
  while (::read(0, buf, sizeof(buf)) > 0) {
  }
  return 0;
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
  uint64_t count = 10000;
  size_t size = 1;
  double seconds = 3;
  auto* pingCmd = app.add_subcommand("pingpong", "request/response latency");
  pingCmd->add_option("--to", to)->required();
  pingCmd->add_option("--count", count)->capture_default_str();
  pingCmd->add_option("--size", size, "bytes per message")->check(CLI::Range(1, 1 << 20))->capture_default_str();
  auto* crrCmd = app.add_subcommand("crr", "new connection per request");
  std::vector<std::string> crrTargets;
  crrCmd->add_option("--to", crrTargets, "address:port; several are taken in turn")->required();
  crrCmd->add_option("--seconds", seconds)->capture_default_str();
  uint64_t crrCount = 0;
  crrCmd->add_option("--count", crrCount, "exactly this many connections instead of --seconds");
  unsigned threads = 1;
  crrCmd->add_option("--threads", threads, "connections opened at once")->check(CLI::Range(1u, 256u))->capture_default_str();
  auto* streamsCmd = app.add_subcommand("streams", "long-lived connections echoing at an interval");
  streamsCmd->add_option("--to", to)->required();
  uint64_t streamCount = 100;
  streamsCmd->add_option("--count", streamCount)->check(CLI::Range(uint64_t{1}, uint64_t{1000}))->capture_default_str();
  streamsCmd->add_option("--seconds", seconds)->capture_default_str();
  int intervalMs = 50;
  streamsCmd->add_option("--interval-ms", intervalMs, "between one stream's echoes")->check(CLI::Range(1, 60000))->capture_default_str();
  auto* verifyCmd = app.add_subcommand("verify", "one-way receiver checking every byte");
  verifyCmd->add_option("--listen", listen)->capture_default_str();
  verifyCmd->add_option("--seed", seed)->capture_default_str();
  bool oneWay = false;
  sendCmd->add_flag("--one-way", oneWay, "send only; a `verify` server checks the bytes");
  auto* holdCmd = app.add_subcommand("hold", "open and hold many connections");
  holdCmd->add_option("--to", to)->required();
  holdCmd->add_option("--count", count)->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  // Tests hold many connections: take the hard descriptor limit (root may raise it further).
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    rlimit wanted{1 << 20, 1 << 20};
    if (::setrlimit(RLIMIT_NOFILE, &wanted) != 0) {
      limit.rlim_cur = limit.rlim_max;
      ::setrlimit(RLIMIT_NOFILE, &limit);
    }
  }
  if (serveCmd->parsed()) return serve(listen);
  if (pingCmd->parsed()) return pingpong(to, count, size);
  if (crrCmd->parsed() || streamsCmd->parsed()) ::signal(SIGTERM, [](int) { stopRequested = 1; });
  if (crrCmd->parsed()) return crr(crrTargets, seconds, crrCount, threads);
  if (streamsCmd->parsed()) return streams(to, streamCount, seconds, std::chrono::milliseconds(intervalMs));
  if (holdCmd->parsed()) return hold(to, count);
  if (verifyCmd->parsed()) return verifyServer(listen, seed);
  if (oneWay) return sendOneWay(to, bytes, seed);
  return send(to, bytes, seed, mark);
}
