// A deliberately small HTTP/1.1 server for operator endpoints (the tunnel: admin 15000,
// metrics 15020, readiness 15021), on a thread of its own so a scrape never delays the data
// path. GET only, one request per connection, request head capped at 8 KiB and 5 s: every byte
// is treated as hostile.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <string>
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
  ~HttpServer();
  // Listens on `address` ("127.0.0.1:15000") serving `routes` (path -> handler).
  Status listen(const std::string& address, std::map<std::string, HttpHandler> routes);
  void start();
  void stop();

 private:
  struct Endpoint {
    UniqueFd fd;
    std::map<std::string, HttpHandler> routes;
  };
  void serve(int fd, const Endpoint& endpoint);
  std::vector<Endpoint> endpoints_;
  UniqueFd stopEvent_;
  std::thread thread_;
};

}  // namespace sluice
