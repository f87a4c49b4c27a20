// libFuzzer: the HBONE server's request handling, fed hostile HTTP/2 bytes (what a verified
// but malicious peer can send after TLS). The server session must never crash or leak; each
// request it surfaces gets the same judgement the worker applies (decideInbound) and a
// response; data is sent back, consumed and finished as the worker would: lent to the stream
// (StreamEndpoint's writes) while no loan is out, else copied in, the loan ended once framed
// or when the stream closes.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "http2/http2_session.h"
#include "proxy/inbound_decision.h"

using namespace sluice::ztunnel;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::map<int32_t, std::string> lent;  // outlives the session: what it may still point into
  auto session = http2::Http2Session::create(http2::Http2Session::Role::kServer, {.maxConcurrentStreams = 8});
  if (!session) return 0;
  static const ConfigSnapshot config;
  const InboundPod pod{"shop", {"10.244.1.5", "fd00::5"}};
  // The input in a few pieces, so frames split across reads.
  size_t offset = 0;
  for (int round = 0; round < 4 && offset < size; ++round) {
    size_t piece = round == 3 ? size - offset : std::min(size - offset, size / 4 + 1);
    if (!(*session)->receive({data + offset, piece})) break;
    offset += piece;
    for (const auto& e : (*session)->takeEvents()) {
      using Kind = http2::SessionEvent::Kind;
      auto& s = **session;
      if (e.kind == Kind::kRequest) {
        const auto* request = s.request(e.stream);
        int status = s.status(e.stream) == 400 || request == nullptr
                         ? 400
                         : decideInbound({true, "spiffe://cluster.local/ns/a/sa/b", "10.0.0.1", request->authority}, pod, config)
                               .httpStatus();
        s.respond(e.stream, status);
      } else if (e.kind == Kind::kData) {
        std::string bytes;
        bytes.swap(s.inbox(e.stream));
        s.consumed(e.stream, bytes.size());
        if (lent.contains(e.stream)) {
          s.write(e.stream, {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
        } else if (!bytes.empty()) {
          std::string& loan = lent[e.stream] = std::move(bytes);
          s.lend(e.stream, {reinterpret_cast<const uint8_t*>(loan.data()), loan.size()});
        }
      } else if (e.kind == Kind::kWritable) {
        auto it = lent.find(e.stream);
        if (it != lent.end() && s.lentTaken(e.stream) == it->second.size()) {
          s.endLoan(e.stream);
          lent.erase(it);
        }
      } else if (e.kind == Kind::kEnd) {
        s.finish(e.stream);
      } else if (e.kind == Kind::kClosed) {
        s.endLoan(e.stream);
        lent.erase(e.stream);
        s.release(e.stream);
      }
    }
    std::string out;
    if (!(*session)->produce(out)) break;
  }
  return 0;
}
