// Istio's `retries.retryOn`: a comma-separated list of Envoy's retry conditions (HTTP and gRPC)
// and HTTP status codes. Parsed in one place for the controller (which refuses a bad list at
// load, naming the value) and the tunnel (which applies it).
#pragma once

#include <set>
#include <string_view>

#include "sluice/common/error.h"

namespace sluice {

struct RetryOn {
  bool status5xx = false;             // 5xx, and a reset or connect failure (Envoy's)
  bool gatewayError = false;          // 502, 503, 504
  bool reset = false;                 // the upstream reset or closed before a response
  bool connectFailure = false;
  bool refusedStream = false;         // HTTP/2 REFUSED_STREAM
  bool retriable4xx = false;          // 409
  bool retriableStatusCodes = false;  // the codes in `statusCodes`
  std::set<int> statusCodes;          // numbers listed (Istio adds them as retriable status codes)
  std::set<int> grpcStatuses;         // cancelled 1, deadline-exceeded 4, resource-exhausted 8, internal 13, unavailable 14
  bool operator==(const RetryOn&) const = default;
};

// Fails naming the first entry that is neither a known condition nor a status code (100-599).
Result<RetryOn> parseRetryOn(std::string_view text);

}  // namespace sluice
