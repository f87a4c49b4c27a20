#include "l7/http_version.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>

namespace sluice::ztunnel::l7 {

HttpVersionGuess guessHttpVersion(std::span<const uint8_t> first) {
  size_t compared = std::min(first.size(), size_t{NGHTTP2_CLIENT_MAGIC_LEN});
  if (compared == 0) return HttpVersionGuess::kUndecided;
  if (std::memcmp(first.data(), NGHTTP2_CLIENT_MAGIC, compared) != 0) return HttpVersionGuess::kHttp1;
  return compared == NGHTTP2_CLIENT_MAGIC_LEN ? HttpVersionGuess::kHttp2 : HttpVersionGuess::kUndecided;
}

}  // namespace sluice::ztunnel::l7
