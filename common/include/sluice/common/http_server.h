// A small HTTP/1.1 server for operator endpoints (the tunnel: admin 15000, metrics 15020,
// readiness 15021; the controller's status port), on a thread of its own so a scrape never
// delays the data path.
//
// Every byte is treated as hostile, and no client can hold up another: sockets are
// non-blocking and served together from one poll loop, each connection has a deadline from
// its accept (3 s) for its request head (at most 8 KiB) and the answer, and at most
// kMaxConnections are open at once (past that, the oldest is dropped). GET and HEAD only,
// exact paths, one request per connection.
//
// (civetweb, the embedded server the project would rather use, is built without IPv6 in
// Debian 12, and the metrics and readiness ports must answer on both families.)
#pragma once

#include <chrono>
#include <expected>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "sluice/common/error.h"
#include "sluice/common/unique_fd.h"

namespace sluice {

struct HttpResponse {
  int status = 200;
  std::string contentType = "text/plain; charset=utf-8";
  std::string body;
};

using HttpHandler = std::function<HttpResponse()>;

// Parses "GET /path HTTP/1.1\r\n...\r\n\r\n"; returns the path, or an error status (400/405).
std::expected<std::string, int> parseRequestHead(std::string_view head);

class HttpServer {
 public:
  static constexpr size_t kMaxHead = 8192;
  static constexpr size_t kMaxConnections = 256;
  static constexpr std::chrono::milliseconds kDeadline{3000};

  // `reusePort`: listeners set SO_REUSEPORT, so a successor process (a tunnel upgrade) can bind
  // the same ports while this one still serves; the old one stop()s once replaced.
  explicit HttpServer(bool reusePort = false) : reusePort_(reusePort) {}
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Listens on `address` ("127.0.0.1:15000"; "[::]:15020" takes IPv4 too) serving `routes`
  // (exact path -> handler); requests are served once start() runs.
  Status listen(const std::string& address, std::map<std::string, HttpHandler> routes);
  void start();
  // Stops serving and closes the listening sockets (idempotent).
  void stop();
  // The port of listener `index` (in listen() order; tests listen on port 0).
  int port(size_t index) const;

 private:
  struct Endpoint {
    UniqueFd fd;
    std::map<std::string, HttpHandler> routes;
  };
  struct Connection {
    UniqueFd fd;
    const Endpoint* endpoint = nullptr;
    std::chrono::steady_clock::time_point deadline;
    std::string in, out;
    size_t sent = 0;
    bool answering = false;  // the head is complete; `out` holds the answer
  };
  void run();
  void accept(const Endpoint& endpoint);
  // Reads what is there; false when the connection is done (closed, failed, over limits).
  bool onReadable(Connection& c);
  bool onWritable(Connection& c);
  void answer(Connection& c);

  bool reusePort_ = false;
  std::vector<Endpoint> endpoints_;
  std::vector<Connection> connections_;
  UniqueFd stopEvent_;
  std::thread thread_;
};

}  // namespace sluice
