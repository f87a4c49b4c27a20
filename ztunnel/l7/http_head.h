// An HTTP/1.1 message head as the tunnel holds it between parsing and forwarding: the request
// line (or status line) and the header fields in their order and spelling. Names compare
// case-insensitively (RFC 9110 §5.1); values are as received, without surrounding whitespace.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::ztunnel::l7 {

struct HttpHeader {
  std::string name, value;
};

bool equalsIgnoreCase(std::string_view a, std::string_view b);

struct HttpHead {
  std::string method;  // request only
  std::string target;  // request only: the request-target as sent (origin-form: path and query)
  int status = 0;      // response only
  std::string reason;  // response only
  uint8_t versionMajor = 1, versionMinor = 1;
  std::vector<HttpHeader> headers;

  // The first field named `name` (any case), or null.
  const std::string* find(std::string_view name) const;
  // Replaces every field named `name` with one field carrying `value`.
  void set(std::string_view name, std::string_view value);
  void add(std::string_view name, std::string_view value) { headers.push_back({std::string(name), std::string(value)}); }
  void remove(std::string_view name);
  // The request-target's path (before '?') and query (after it, without the '?').
  std::string_view path() const;
  std::string_view query() const;
  // The request's authority: the Host field (HTTP/1.1 requires it).
  std::string_view authority() const;

  // The head as it goes on the wire (request line or status line, fields, empty line).
  std::string serializeRequest() const;
  std::string serializeResponse() const;
};

}  // namespace sluice::ztunnel::l7
