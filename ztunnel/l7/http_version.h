// Which HTTP an app speaks on a port Istio calls HTTP: HTTP/1.1, or HTTP/2 with prior knowledge
// (h2c), told apart by the connection's first bytes as Envoy's HTTP inspector does. HTTP/2
// opens with a fixed preface (RFC 9113 §3.4) no HTTP/1.1 request can start with; anything else
// is HTTP/1.1, whose parser refuses what is not HTTP.
#pragma once

#include <cstdint>
#include <span>

namespace sluice::ztunnel::l7 {

enum class HttpVersionGuess {
  kUndecided,  // the bytes so far are a proper prefix of the preface: more must be read
  kHttp1,
  kHttp2,
};

// `first`: the connection's first bytes (any number; only the preface's length matters).
HttpVersionGuess guessHttpVersion(std::span<const uint8_t> first);

}  // namespace sluice::ztunnel::l7
