#include "sluice/common/http_server.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>

#include "sluice/common/socket_address.h"

namespace sluice {
namespace {

const char* statusText(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 503: return "Service Unavailable";
    default: return "Error";
  }
}

}  // namespace

std::expected<std::string, int> parseRequestHead(std::string_view head) {
  size_t lineEnd = head.find("\r\n");
  if (lineEnd == std::string_view::npos) return std::unexpected(400);
  std::string_view line = head.substr(0, lineEnd);
  size_t sp1 = line.find(' ');
  size_t sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1) return std::unexpected(400);
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return std::unexpected(400);
  if (target.empty() || target.front() != '/') return std::unexpected(400);
  if (method != "GET" && method != "HEAD") return std::unexpected(405);
  size_t query = target.find('?');
  return std::string(target.substr(0, query));
}

HttpServer::~HttpServer() { stop(); }

Status HttpServer::listen(const std::string& address, std::map<std::string, HttpHandler> routes) {
  auto addr = SocketAddress::parse(address);
  if (!addr) return fail(std::move(addr.error()).context("listen address"));
  UniqueFd fd(::socket(addr->family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return failErrno("socket for " + address);
  int one = 1, zero = 0;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (reusePort_ && ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
    return failErrno("SO_REUSEPORT for " + address);
  }
  if (addr->family() == AF_INET6) ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
  if (::bind(fd.get(), addr->sockaddrPtr(), addr->length()) != 0) return failErrno("bind " + address);
  if (::listen(fd.get(), 64) != 0) return failErrno("listen " + address);
  endpoints_.push_back({std::move(fd), std::move(routes)});
  return {};
}

int HttpServer::port(size_t index) const {
  if (index >= endpoints_.size()) return -1;
  return localAddress(endpoints_[index].fd.get()).port();
}

void HttpServer::start() {
  stopEvent_.reset(::eventfd(0, EFD_CLOEXEC));
  thread_ = std::thread([this] { run(); });
}

void HttpServer::stop() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(stopEvent_.get(), &one, sizeof(one));
    thread_.join();
  }
  connections_.clear();
  endpoints_.clear();
}

void HttpServer::run() {
  std::vector<pollfd> fds;
  for (;;) {
    // Deadlines first: whatever a client did not finish in time is dropped.
    auto now = std::chrono::steady_clock::now();
    std::erase_if(connections_, [now](const Connection& c) { return now >= c.deadline; });
    fds.clear();
    for (const auto& e : endpoints_) fds.push_back({e.fd.get(), POLLIN, 0});
    for (const auto& c : connections_) fds.push_back({c.fd.get(), static_cast<short>(c.answering ? POLLOUT : POLLIN), 0});
    fds.push_back({stopEvent_.get(), POLLIN, 0});
    int timeout = -1;
    if (!connections_.empty()) {
      auto first = std::min_element(connections_.begin(), connections_.end(),
                                    [](const Connection& a, const Connection& b) { return a.deadline < b.deadline; });
      timeout = static_cast<int>(
          std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(first->deadline - now).count()) + 1);
    }
    if (::poll(fds.data(), fds.size(), timeout) < 0) continue;
    if (fds.back().revents) return;
    // Serve the connections polled (by index: accepting below appends to the vector).
    size_t polled = connections_.size();
    std::vector<bool> done(polled, false);
    for (size_t i = 0; i < polled; ++i) {
      short revents = fds[endpoints_.size() + i].revents;
      if (revents == 0) continue;
      Connection& c = connections_[i];
      done[i] = c.answering ? !onWritable(c) : !onReadable(c);
    }
    for (size_t i = polled; i-- > 0;) {
      if (done[i]) connections_.erase(connections_.begin() + static_cast<std::ptrdiff_t>(i));
    }
    for (size_t i = 0; i < endpoints_.size(); ++i) {
      if (fds[i].revents) accept(endpoints_[i]);
    }
  }
}

void HttpServer::accept(const Endpoint& endpoint) {
  for (;;) {
    int fd = ::accept4(endpoint.fd.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;
    // At the cap the oldest connection goes: a flood of idle clients cannot lock others out.
    if (connections_.size() >= kMaxConnections) connections_.erase(connections_.begin());
    Connection c;
    c.fd.reset(fd);
    c.endpoint = &endpoint;
    c.deadline = std::chrono::steady_clock::now() + kDeadline;
    connections_.push_back(std::move(c));
  }
}

bool HttpServer::onReadable(Connection& c) {
  char buf[2048];
  for (;;) {
    ssize_t n = ::recv(c.fd.get(), buf, sizeof(buf), 0);
    if (n == 0) return false;
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    c.in.append(buf, static_cast<size_t>(n));
    if (c.in.size() > kMaxHead || c.in.find("\r\n\r\n") != std::string::npos) break;
  }
  answer(c);
  return onWritable(c);
}

void HttpServer::answer(Connection& c) {
  HttpResponse response;
  auto path = c.in.size() > kMaxHead ? std::expected<std::string, int>(std::unexpected(400)) : parseRequestHead(c.in);
  if (!path) {
    response = {path.error(), "text/plain; charset=utf-8", statusText(path.error())};
  } else if (auto it = c.endpoint->routes.find(*path); it != c.endpoint->routes.end()) {
    response = it->second();
  } else {
    std::string known;
    for (const auto& [p, _] : c.endpoint->routes) known += " " + p;
    response = {404, "text/plain; charset=utf-8", fmt::format("not found; this port serves:{}\n", known)};
  }
  bool headOnly = c.in.rfind("HEAD ", 0) == 0;
  c.out = fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                      response.status, statusText(response.status), response.contentType, response.body.size());
  if (!headOnly) c.out += response.body;
  c.answering = true;
}

bool HttpServer::onWritable(Connection& c) {
  while (c.sent < c.out.size()) {
    ssize_t n = ::send(c.fd.get(), c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    c.sent += static_cast<size_t>(n);
  }
  return false;  // all sent: close
}

}  // namespace sluice
