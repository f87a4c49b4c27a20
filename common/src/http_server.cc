#include "sluice/common/http_server.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <chrono>

#include "sluice/common/socket_address.h"
#include "sluice/common/unix_socket.h"

namespace sluice {
namespace {

constexpr size_t kMaxHead = 8192;

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
  UniqueFd fd(::socket(addr->family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd.get(), addr->sockaddrPtr(), addr->length()) != 0) return failErrno("bind " + address);
  if (::listen(fd.get(), 64) != 0) return failErrno("listen " + address);
  endpoints_.push_back({std::move(fd), std::move(routes)});
  return {};
}

void HttpServer::start() {
  stopEvent_.reset(::eventfd(0, EFD_CLOEXEC));
  thread_ = std::thread([this] {
    for (;;) {
      std::vector<pollfd> fds;
      for (const auto& e : endpoints_) fds.push_back({e.fd.get(), POLLIN, 0});
      fds.push_back({stopEvent_.get(), POLLIN, 0});
      if (::poll(fds.data(), fds.size(), -1) < 0) continue;
      if (fds.back().revents) return;
      for (size_t i = 0; i < endpoints_.size(); ++i) {
        if (!fds[i].revents) continue;
        int conn = ::accept4(endpoints_[i].fd.get(), nullptr, nullptr, SOCK_CLOEXEC);
        if (conn < 0) continue;
        UniqueFd owned(conn);
        serve(conn, endpoints_[i]);
      }
    }
  });
}

void HttpServer::stop() {
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(stopEvent_.get(), &one, sizeof(one));
  thread_.join();
}

void HttpServer::serve(int fd, const Endpoint& endpoint) {
  std::string head;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (head.find("\r\n\r\n") == std::string::npos) {
    if (head.size() > kMaxHead) break;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return;
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) return;
    char buf[2048];
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return;
    head.append(buf, static_cast<size_t>(n));
  }
  HttpResponse response;
  auto path = head.size() > kMaxHead ? std::expected<std::string, int>(std::unexpected(400)) : parseRequestHead(head);
  if (!path) {
    response = {path.error(), "text/plain; charset=utf-8", statusText(path.error())};
  } else if (auto it = endpoint.routes.find(*path); it != endpoint.routes.end()) {
    response = it->second();
  } else {
    std::string known;
    for (const auto& [p, _] : endpoint.routes) known += " " + p;
    response = {404, "text/plain; charset=utf-8", fmt::format("not found; this port serves:{}\n", known)};
  }
  bool headOnly = head.rfind("HEAD ", 0) == 0;
  std::string out = fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                response.status, statusText(response.status), response.contentType,
                                response.body.size());
  if (!headOnly) out += response.body;
  (void)writeAll(fd, out);
}

}  // namespace sluice
