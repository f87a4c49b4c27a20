// A reproducible pseudo-random byte stream (xorshift64*, seeded): the sender writes it, the
// checker regenerates it, so a transfer of any size is verified byte for byte without holding
// it in memory. Not cryptographic; it only has to make shifted, dropped or duplicated bytes show.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sluice::tcpcheck {

class ByteStream {
 public:
  explicit ByteStream(uint64_t seed) : state_(seed == 0 ? 0x9E3779B97F4A7C15ull : seed) {}

  // Writes the next `n` bytes of the stream into `out`.
  void fill(unsigned char* out, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      if (available_ == 0) refill();
      out[i] = static_cast<unsigned char>(word_ >> (8 * --available_));
    }
  }

 private:
  void refill() {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    word_ = state_ * 0x2545F4914F6CDD1Dull;
    available_ = 8;
  }

  uint64_t state_;
  uint64_t word_ = 0;
  int available_ = 0;
};

}  // namespace sluice::tcpcheck
