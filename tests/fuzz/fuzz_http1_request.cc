// The HTTP/1.1 request path of the L7 tunnel: hostile bytes from an app, fed in pieces whose
// size the input chooses. Invariants: no crash or leak; a step never consumes more than it
// was given; every accepted head, serialized as the tunnel forwards it, parses back to the
// same head (what the server sees is what was routed on: no smuggling through re-encoding).
#include <cstdint>
#include <span>
#include <string>

#include "l7/http1_parser.h"
#include "fuzz_check.h"

using sluice::ztunnel::l7::Http1Parser;
using Event = Http1Parser::Step::Event;
using sluice::fuzz::check;

namespace {
void reparse(const sluice::ztunnel::l7::HttpHead& head) {
  std::string wire = head.serializeRequest();
  Http1Parser again(Http1Parser::Kind::kRequest);
  auto step = again.feed({reinterpret_cast<const uint8_t*>(wire.data()), wire.size()});
  check(step.event == Event::kHead);
  check(step.consumed == wire.size());
  const auto& h = again.head();
  check(h.method == head.method && h.target == head.target && h.headers.size() == head.headers.size());
  for (size_t i = 0; i < h.headers.size(); ++i) {
    check(h.headers[i].name == head.headers[i].name && h.headers[i].value == head.headers[i].value);
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  size_t piece = 1 + data[0] % 64;
  std::span<const uint8_t> input(data + 1, size - 1);
  Http1Parser parser(Http1Parser::Kind::kRequest);
  for (size_t at = 0; at < input.size();) {
    std::span<const uint8_t> rest = input.subspan(at, std::min(piece, input.size() - at));
    at += rest.size();
    while (true) {
      auto step = parser.feed(rest);
      check(step.consumed <= rest.size());
      check(step.body.size() <= step.consumed);
      if (step.event == Event::kError) return 0;
      if (step.event == Event::kHead) reparse(parser.head());
      if (step.event == Event::kEnd) parser.next();
      rest = rest.subspan(step.consumed);
      if (step.event == Event::kNeedMore) break;
    }
  }
  (void)parser.finish();
  return 0;
}
