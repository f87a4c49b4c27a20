// Unix-domain sockets: listening and connecting by path, and whole messages with attached file
// descriptors (SCM_RIGHTS) over SOCK_SEQPACKET, which keeps message boundaries.
//
// Received descriptors are owned by the caller as UniqueFd; a message that arrives with more
// descriptors than expected, or truncated, is refused and every descriptor it carried closed,
// so a hostile peer can neither leak descriptors into us nor slip a partial message past.
#pragma once

#include <chrono>
#include <span>
#include <string>
#include <vector>

#include "sluice/common/error.h"
#include "sluice/common/unique_fd.h"

namespace sluice {

// Creates the socket at `path` (replacing a stale one) with permissions `mode`, listening.
Result<UniqueFd> listenUnix(const std::string& path, int type, mode_t mode = 0600);
Result<UniqueFd> connectUnix(const std::string& path, int type);

// Sends one message with `fds` attached.
Status sendMessage(int socket, std::string_view bytes, std::span<const int> fds = {});

struct ReceivedMessage {
  std::string bytes;  // empty with eof set when the peer closed
  std::vector<UniqueFd> fds;
  bool eof = false;
};

// Receives one message of at most `maxBytes` bytes and `maxFds` descriptors, waiting up to
// `timeout` (negative: forever).
Result<ReceivedMessage> receiveMessage(int socket, size_t maxBytes, size_t maxFds,
                                       std::chrono::milliseconds timeout);

// Reads one '\n'-terminated line (without it) from a stream socket, at most `maxBytes`; used by
// the agent's JSON-lines control socket. `buffer` keeps bytes read past the line.
Result<std::string> readLineFrom(int socket, std::string& buffer, size_t maxBytes,
                                 std::chrono::milliseconds timeout);
Status writeAll(int socket, std::string_view bytes);

}  // namespace sluice
