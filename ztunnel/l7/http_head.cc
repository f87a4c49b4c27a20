#include "l7/http_head.h"

#include <fmt/format.h>

#include <algorithm>

namespace sluice::ztunnel::l7 {

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return (x >= 'A' && x <= 'Z' ? x + 32 : x) == (y >= 'A' && y <= 'Z' ? y + 32 : y);
         });
}

const std::string* HttpHead::find(std::string_view name) const {
  for (const auto& h : headers) {
    if (equalsIgnoreCase(h.name, name)) return &h.value;
  }
  return nullptr;
}

void HttpHead::set(std::string_view name, std::string_view value) {
  remove(name);
  add(name, value);
}

void HttpHead::remove(std::string_view name) {
  std::erase_if(headers, [name](const HttpHeader& h) { return equalsIgnoreCase(h.name, name); });
}

std::string_view HttpHead::path() const {
  std::string_view t = target;
  return t.substr(0, t.find('?'));
}

std::string_view HttpHead::query() const {
  std::string_view t = target;
  size_t q = t.find('?');
  return q == std::string_view::npos ? std::string_view{} : t.substr(q + 1);
}

std::string_view HttpHead::authority() const {
  const std::string* host = find("host");
  return host != nullptr ? std::string_view(*host) : std::string_view{};
}

namespace {
void appendFields(std::string& out, const std::vector<HttpHeader>& headers) {
  for (const auto& h : headers) {
    out += h.name;
    out += ": ";
    out += h.value;
    out += "\r\n";
  }
  out += "\r\n";
}
}  // namespace

std::string HttpHead::serializeRequest() const {
  std::string out = fmt::format("{} {} HTTP/{}.{}\r\n", method, target, versionMajor, versionMinor);
  appendFields(out, headers);
  return out;
}

std::string HttpHead::serializeResponse() const {
  std::string out = fmt::format("HTTP/{}.{} {} {}\r\n", versionMajor, versionMinor, status, reason);
  appendFields(out, headers);
  return out;
}

}  // namespace sluice::ztunnel::l7
