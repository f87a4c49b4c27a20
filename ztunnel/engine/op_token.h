// Completion identity for io_uring: every submission's user_data names an operation and a
// generation-checked slot, never a raw pointer or fd. A completion that arrives for a slot that
// has since been freed and reused carries the old generation and is recognised as stale.
//
//   bits 63..56  operation (enum Op)
//   bits 55..32  slot generation (24 bits, wraps)
//   bits 31..0   slot index
#pragma once

#include <cstdint>

namespace sluice::ztunnel {

enum class Op : uint8_t {
  kWake = 1,       // eventfd read: tasks posted from another thread
  kTick,           // periodic timer: idle and drain deadlines
  kAccept,         // multishot accept on a listener slot
  kConnect,        // upstream connect of a relay slot
  kConnectTimeout, // linked timeout of kConnect
  kRecvDown,       // recv from the accepted (downstream) socket
  kRecvUp,         // recv from the upstream socket
  kSendDown,       // send to the downstream socket
  kSendUp,         // send to the upstream socket
  kShutdownDown,   // shutdown(SHUT_WR) of the downstream socket (half-close carried across)
  kShutdownUp,
  kCancel,         // cancellation request (its own completion is ignored)
  kTunnelConnect,  // HBONE client: TCP connect to the peer's 15008
  kTunnelConnectTimeout,
  kTunnelRecv,     // ciphertext from an HBONE connection
  kTunnelSend,     // ciphertext to an HBONE connection
};

struct OpToken {
  Op op;
  uint32_t generation;  // 24 bits used
  uint32_t slot;

  uint64_t encode() const {
    return (uint64_t(static_cast<uint8_t>(op)) << 56) | (uint64_t(generation & 0xffffffu) << 32) | slot;
  }
  static OpToken decode(uint64_t data) {
    return {static_cast<Op>(data >> 56), static_cast<uint32_t>((data >> 32) & 0xffffffu),
            static_cast<uint32_t>(data & 0xffffffffu)};
  }
};

}  // namespace sluice::ztunnel
