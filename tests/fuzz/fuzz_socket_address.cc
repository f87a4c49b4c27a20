// Fuzz: "ip:port" parsing (CLI, control socket, later :authority in HBONE).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "sluice/common/assert.h"
#include "sluice/common/socket_address.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parsed = sluice::SocketAddress::parse(std::string_view(reinterpret_cast<const char*>(data), size));
  if (parsed) {
    // What parses must print back to something that parses to the same address.
    auto again = sluice::SocketAddress::parse(parsed->toString());
    SLUICE_CHECK(again && again->toString() == parsed->toString(), "SocketAddress round trip");
  }
  return 0;
}
