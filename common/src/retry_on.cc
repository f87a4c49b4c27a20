#include "sluice/common/retry_on.h"

#include <fmt/format.h>

#include <charconv>

namespace sluice {

Result<RetryOn> parseRetryOn(std::string_view text) {
  RetryOn on;
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item.empty()) continue;
    int code = 0;
    auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), code);
    if (ec == std::errc() && end == item.data() + item.size()) {
      if (code < 100 || code > 599) return fail(fmt::format("'{}' is not an HTTP status code", item));
      on.statusCodes.insert(code);
      on.retriableStatusCodes = true;
      continue;
    }
    if (item == "5xx") on.status5xx = true;
    else if (item == "gateway-error") on.gatewayError = true;
    else if (item == "reset") on.reset = true;
    else if (item == "connect-failure") on.connectFailure = true;
    else if (item == "refused-stream") on.refusedStream = true;
    else if (item == "retriable-4xx") on.retriable4xx = true;
    else if (item == "retriable-status-codes") on.retriableStatusCodes = true;
    else if (item == "cancelled") on.grpcStatuses.insert(1);
    else if (item == "deadline-exceeded") on.grpcStatuses.insert(4);
    else if (item == "resource-exhausted") on.grpcStatuses.insert(8);
    else if (item == "internal") on.grpcStatuses.insert(13);
    else if (item == "unavailable") on.grpcStatuses.insert(14);
    else return fail(fmt::format("'{}' is not a retry condition (5xx, gateway-error, reset, connect-failure, refused-stream, "
                                 "retriable-4xx, retriable-status-codes, cancelled, deadline-exceeded, internal, "
                                 "resource-exhausted, unavailable, or a status code)", item));
  }
  return on;
}

}  // namespace sluice
