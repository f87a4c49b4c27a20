// Completion identity for io_uring: every submission's user_data names a handler slot, that
// slot's generation, and an operation code the handler defines, never a raw pointer or fd.
// A completion that arrives for a slot that has since been freed and reused carries the old
// generation and is recognised as stale.
//
//   bits 63..56  operation (handler-defined; the loop's own ops use the reserved slot)
//   bits 55..32  slot generation (24 bits, wraps)
//   bits 31..0   slot index (kLoopSlot: the loop itself)
#pragma once

#include <cstdint>

namespace sluice::ztunnel {

inline constexpr uint32_t kLoopSlot = UINT32_MAX;

struct OpToken {
  uint8_t op;
  uint32_t generation;  // 24 bits used
  uint32_t slot;

  uint64_t encode() const {
    return (uint64_t(op) << 56) | (uint64_t(generation & 0xffffffu) << 32) | slot;
  }
  static OpToken decode(uint64_t data) {
    return {static_cast<uint8_t>(data >> 56), static_cast<uint32_t>((data >> 32) & 0xffffffu),
            static_cast<uint32_t>(data & 0xffffffffu)};
  }
};

}  // namespace sluice::ztunnel
