// Telling HTTP/1.1 from prior-knowledge HTTP/2 by a connection's first bytes: a table.
#include "l7/http_version.h"

#include <gtest/gtest.h>

#include <string>

namespace sluice::ztunnel::l7 {
namespace {

HttpVersionGuess guess(const std::string& bytes) {
  return guessHttpVersion({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
}

TEST(HttpVersion, FirstBytesDecideTheProtocol) {
  const std::string preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  struct Case {
    std::string bytes;
    HttpVersionGuess want;
  };
  const Case cases[] = {
      {"", HttpVersionGuess::kUndecided},
      {"P", HttpVersionGuess::kUndecided},             // POST, PUT, PATCH or the preface
      {"PRI * HTTP/2.0\r\n", HttpVersionGuess::kUndecided},
      {preface.substr(0, preface.size() - 1), HttpVersionGuess::kUndecided},
      {preface, HttpVersionGuess::kHttp2},
      {preface + "\x00\x00\x12\x04", HttpVersionGuess::kHttp2},  // SETTINGS follows in the same write
      {"GET / HTTP/1.1\r\n", HttpVersionGuess::kHttp1},
      {"POST /x HTTP/1.1\r\n", HttpVersionGuess::kHttp1},
      {"PUT", HttpVersionGuess::kHttp1},
      {"PRI * HTTP/1.1\r\n", HttpVersionGuess::kHttp1},  // a method named PRI, not the preface
      {"pri * HTTP/2.0\r\n\r\nSM\r\n\r\n", HttpVersionGuess::kHttp1},  // the preface is case-sensitive
      {std::string("\x16\x03\x01", 3), HttpVersionGuess::kHttp1},  // TLS: HTTP/1.1's parser refuses it
  };
  for (const auto& c : cases) EXPECT_EQ(guess(c.bytes), c.want) << testing::PrintToString(c.bytes);
}

}  // namespace
}  // namespace sluice::ztunnel::l7
