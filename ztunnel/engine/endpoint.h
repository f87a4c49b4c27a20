// One side of a relay: a byte stream the relay reads from and writes to. Two kinds exist: a
// socket driven by io_uring (SocketEndpoint) and a CONNECT stream inside an HBONE connection
// (StreamEndpoint, proxy/). The relay (engine/relay.h) holds one of each side and never asks
// which kind it has, so the same code carries plain TCP and HBONE.
//
// The calls are polls: each returns at once, either with a result or kPending. An endpoint that
// returned kPending calls its owner's onEndpointProgress() later, when polling again can make
// progress; it never calls back from inside one of these calls (no re-entry into the relay).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "proxy/fail_reason.h"

namespace sluice::ztunnel {

// Bytes read from an endpoint, lent to the relay until it gives them back with release().
struct Chunk {
  const uint8_t* data = nullptr;
  uint32_t length = 0;
  uint32_t handle = 0;  // the source's own reference (a buffer id)
};

struct IoResult {
  enum class Kind {
    kPending,  // nothing yet; the endpoint reports progress later
    kDone,     // read: `chunk` holds bytes; write: `bytes` were taken; shutdown: done
    kEof,      // read: the peer half-closed (after all its bytes)
    kClosed,   // write: the receiver finished without error and takes nothing more
    kError,    // reset or failure: the relay resets both sides
  };
  Kind kind = Kind::kPending;
  Chunk chunk;
  size_t bytes = 0;
  static IoResult pending() { return {}; }
  static IoResult done(size_t n = 0) { return {Kind::kDone, {}, n}; }
  static IoResult data(Chunk c) { return {Kind::kDone, c, c.length}; }
  static IoResult eof() { return {Kind::kEof}; }
  static IoResult closed() { return {Kind::kClosed}; }
  static IoResult error() { return {Kind::kError}; }
};

class Endpoint;

// The relay, as its endpoints see it.
class EndpointOwner {
 public:
  virtual ~EndpointOwner() = default;
  // Something an endpoint returned kPending for has happened: poll again.
  virtual void onEndpointProgress() = 0;
  // The upstream side is established (socket connected, CONNECT answered 200) or failed.
  virtual void onEndpointConnected(Endpoint& endpoint, bool ok, FailReason reason) = 0;
};

class Endpoint {
 public:
  virtual ~Endpoint() = default;
  virtual IoResult read() = 0;
  // Gives back a chunk read() lent; chunks come back in the order they were read.
  virtual void release(const Chunk& chunk) = 0;
  // Offers `bytes`; kDone says how many were taken (possibly fewer). The relay offers the
  // same unsent bytes again until they are all taken.
  virtual IoResult write(std::span<const uint8_t> bytes) = 0;
  // The receiver finished without error and takes nothing more (an HBONE peer that closed
  // its stream with NO_ERROR): the direction towards it is over.
  virtual bool writeClosed() const { return false; }
  // Half-close towards the peer, after everything written.
  virtual IoResult shutdownWrite() = 0;
  // As an upstream still connecting: takes writes already, to send them as soon as it can (an
  // HBONE stream whose CONNECT is sent but not yet answered; a half-close may still wait:
  // kPending). A socket can't: nothing goes to it before it is connected.
  virtual bool takesEarlyWrites() const { return false; }
  // The other side's connection to its peer is up (downstream of HBONE answers 200 then) or
  // could not be made (it answers 503).
  virtual void upstreamReady() {}
  virtual void upstreamFailed() {}
  // Breaks the stream: with `reset`, the peer sees a reset (RST / RST_STREAM CANCEL).
  virtual void abort(bool reset) = 0;
  // No operation of this endpoint is in flight: it may be closed.
  virtual bool quiescent() const = 0;
  // The relay is finished with it (called once, when quiescent): a socket closes, a stream
  // is given back to its HBONE connection.
  virtual void close() = 0;
  // io_uring completions (socket endpoints; `op` relative to the endpoint).
  virtual void onCompletion(uint8_t /*op*/, int /*res*/, uint32_t /*flags*/) {}
  // Receive buffers came back after read() waited for them.
  virtual void onBuffersAvailable() {}
};

}  // namespace sluice::ztunnel
