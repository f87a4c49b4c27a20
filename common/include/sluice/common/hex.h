// Lower-case hexadecimal digits appended to a string, zero-padded to a fixed width: the ids the
// tunnel puts on every request (traceparent, x-request-id) are made of these, and fmt's
// general formatting cost more than the rest of making them.
#pragma once

#include <cstdint>
#include <string>

namespace sluice {

// Appends the low `digits` hex digits of `value` (0 <= digits <= 16), most significant first.
inline void appendHex(std::string& out, uint64_t value, int digits) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (int shift = (digits - 1) * 4; shift >= 0; shift -= 4) out.push_back(kDigits[(value >> shift) & 0xf]);
}

}  // namespace sluice
