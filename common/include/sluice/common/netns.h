// Working inside another network namespace without moving the calling thread: a short-lived
// helper thread enters the namespace (setns affects only the calling thread), does the one
// thing, and exits; sockets created there stay in that namespace for their whole life.
#pragma once

#include <cstdint>
#include <string>

#include "sluice/common/error.h"
#include "sluice/common/unique_fd.h"

namespace sluice {

// socket(domain, type, protocol) created inside the network namespace `netnsFd`.
Result<UniqueFd> socketInNetns(int netnsFd, int domain, int type, int protocol = 0);

struct ListenOptions {
  uint32_t mark = 0;       // SO_MARK (0: none)
  bool dualStack = false;  // for [::]: accept IPv4 too (IPV6_V6ONLY off)
  bool reusePort = false;  // SO_REUSEPORT: a successor process can bind beside this one
  // With reusePort: an SK_REUSEPORT program attached once listening (SO_ATTACH_REUSEPORT_EBPF;
  // the group takes the last one attached), -1 for none.
  int reuseportProgram = -1;
  int backlog = 4096;
};

// A listening TCP socket on `address` ("127.0.0.1:15001", "[::]:15006") inside `netnsFd`.
Result<UniqueFd> listenInNetns(int netnsFd, const std::string& address, const ListenOptions& options);

// The namespace's cookie (SO_NETNS_COOKIE): the same 64-bit id BPF programs get from
// bpf_get_netns_cookie(), stable for the namespace's life and never reused.
Result<uint64_t> netnsCookie(int netnsFd);

// Opens a network namespace file (/run/netns/x, /proc/<pid>/ns/net) and checks it is one.
Result<UniqueFd> openNetns(const std::string& path);

}  // namespace sluice
