#include "l7/http2_fields.h"

#include <charconv>

namespace sluice::ztunnel::l7 {

namespace {

bool connectionSpecific(std::string_view name, std::string_view value) {
  for (std::string_view n : {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host"}) {
    if (equalsIgnoreCase(name, n)) return true;
  }
  // TE may only say "trailers" on HTTP/2.
  return equalsIgnoreCase(name, "te") && !equalsIgnoreCase(value, "trailers");
}

// Lowercase names (HTTP/2 requires them; an edit may have added "X-Foo").
std::string lower(std::string_view name) {
  std::string out(name);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

void appendRegular(const HttpHead& head, std::vector<HttpHeader>& out) {
  for (const auto& f : head.headers) {
    if (f.name.empty() || f.name[0] == ':' || connectionSpecific(f.name, f.value)) continue;
    out.push_back({lower(f.name), f.value});
  }
}

}  // namespace

std::optional<Http2Request> requestFromFields(const std::vector<HttpHeader>& fields) {
  Http2Request r;
  std::string authority;
  for (const auto& f : fields) {
    if (f.name == ":method") r.head.method = f.value;
    else if (f.name == ":path") r.head.target = f.value;
    else if (f.name == ":scheme") r.scheme = f.value;
    else if (f.name == ":authority") authority = f.value;
    else if (f.name == "host") {
      if (authority.empty()) authority = f.value;
    } else if (!f.name.empty() && f.name[0] != ':') r.head.headers.push_back(f);
  }
  if (r.head.method.empty() || r.head.target.empty() || authority.empty()) return std::nullopt;
  r.head.headers.insert(r.head.headers.begin(), {"host", authority});
  r.head.versionMajor = 2;
  r.head.versionMinor = 0;
  if (r.scheme.empty()) r.scheme = "http";
  return r;
}

std::vector<HttpHeader> fieldsFromRequest(const Http2Request& request) {
  const std::string* host = request.head.find("host");
  std::vector<HttpHeader> out{{":method", request.head.method},
                              {":scheme", request.scheme},
                              {":authority", host != nullptr ? *host : std::string()},
                              {":path", request.head.target}};
  out.reserve(request.head.headers.size() + 4);
  appendRegular(request.head, out);
  return out;
}

HttpHead responseFromFields(const std::vector<HttpHeader>& fields) {
  HttpHead head;
  head.versionMajor = 2;
  head.versionMinor = 0;
  for (const auto& f : fields) {
    if (f.name == ":status") {
      int status = 0;
      auto [end, ec] = std::from_chars(f.value.data(), f.value.data() + f.value.size(), status);
      head.status = ec == std::errc() && end == f.value.data() + f.value.size() ? status : 0;
    } else if (!f.name.empty() && f.name[0] != ':') {
      head.headers.push_back(f);
    }
  }
  return head;
}

std::vector<HttpHeader> fieldsFromResponse(const HttpHead& response) {
  std::vector<HttpHeader> out{{":status", std::to_string(response.status)}};
  out.reserve(response.headers.size() + 1);
  appendRegular(response, out);
  return out;
}

std::vector<HttpHeader> forwardableTrailers(const std::vector<HttpHeader>& trailers) {
  std::vector<HttpHeader> out;
  for (const auto& f : trailers) {
    if (f.name.empty() || f.name[0] == ':' || connectionSpecific(f.name, f.value)) continue;
    out.push_back(f);
  }
  return out;
}

bool isGrpc(const HttpHead& head) {
  const std::string* type = head.find("content-type");
  if (type == nullptr || type->size() < 16) return false;
  std::string_view t(*type);
  return equalsIgnoreCase(t.substr(0, 16), "application/grpc") && (t.size() == 16 || t[16] == '+' || t[16] == ';');
}

int grpcStatusForHttp(int status) {
  switch (status) {
    case 400: return 13;  // INTERNAL
    case 401: return 16;  // UNAUTHENTICATED
    case 403: return 7;   // PERMISSION_DENIED
    case 404: return 12;  // UNIMPLEMENTED
    case 429:
    case 502:
    case 503:
    case 504: return 14;  // UNAVAILABLE
    default: return 2;    // UNKNOWN
  }
}

}  // namespace sluice::ztunnel::l7
