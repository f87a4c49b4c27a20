// HTTP/2 header blocks as the routing code sees them: a request's pseudo-header fields become
// the HttpHead the route tables match (method, path as the target, :authority as Host), and
// back; the same for responses. Connection-specific fields (RFC 9113 §8.2.2) never go out on
// HTTP/2, whatever a header edit added.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "l7/http_head.h"

namespace sluice::ztunnel::l7 {

struct Http2Request {
  HttpHead head;       // method, target (:path), fields with Host first (from :authority)
  std::string scheme;  // :scheme
};

// Null when a pseudo-header field a routed request needs is missing (:method, :path, and an
// authority from :authority or Host).
std::optional<Http2Request> requestFromFields(const std::vector<HttpHeader>& fields);
std::vector<HttpHeader> fieldsFromRequest(const Http2Request& request);

HttpHead responseFromFields(const std::vector<HttpHeader>& fields);  // status 0 when :status is absent
std::vector<HttpHeader> fieldsFromResponse(const HttpHead& response);

// Trailers as they go out: without pseudo-header or connection-specific fields.
std::vector<HttpHeader> forwardableTrailers(const std::vector<HttpHeader>& trailers);

// gRPC (content-type application/grpc, application/grpc+proto, ...).
bool isGrpc(const HttpHead& head);
// The gRPC status an HTTP status maps to (gRPC's "HTTP to gRPC Status Code Mapping").
int grpcStatusForHttp(int status);

}  // namespace sluice::ztunnel::l7
