// The listener hand-over in the kernel: two listeners share a port (SO_REUSEPORT), as an old
// tunnel and its successor do in a pod; connections wait in both accept queues; the old one
// closes. With the hand-over program (bpf/sluice_reuseport.bpf.c) every waiting connection is
// accepted by the successor, bytes intact; without it, those queued at the old one are reset
// (the control that shows the test can fail). Runs in a fresh network namespace, so the host's
// net.ipv4.tcp_migrate_req cannot decide the outcome.
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <thread>
#include <vector>

#include "proxy/listener_migration.h"
#include "sluice/common/netns.h"
#include "sluice/common/socket_address.h"
#include "support/privileged.h"

namespace sluice::ztunnel {
namespace {

constexpr int kClients = 64;

// A new network namespace with its loopback up (a fresh one starts with lo down).
Result<UniqueFd> freshNetns() {
  Result<UniqueFd> out = fail("not run");
  std::thread([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      out = failErrno("unshare(CLONE_NEWNET)");
      return;
    }
    if (std::system("ip link set lo up") != 0) {
      out = fail("ip link set lo up failed");
      return;
    }
    UniqueFd ns(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
    if (!ns) {
      out = failErrno("open netns");
      return;
    }
    out = std::move(ns);
  }).join();
  return out;
}

struct Outcome {
  int accepted = 0;     // by the successor, each with its client's byte
  int intactBytes = 0;
};

// Two listeners on one port, kClients connections each sending one byte, the first listener
// closed without accepting, then what the second accepts within a second.
Outcome handOver(int program) {
  Outcome outcome;
  auto ns = freshNetns();
  EXPECT_TRUE(ns) << ns.error().message();
  if (!ns) return outcome;
  ListenOptions options{.reusePort = true, .reuseportProgram = program};
  auto old = listenInNetns(ns->get(), "127.0.0.1:0", options);
  EXPECT_TRUE(old) << old.error().message();
  if (!old) return outcome;
  int port = localAddress(old->get()).port();
  auto successor = listenInNetns(ns->get(), "127.0.0.1:" + std::to_string(port), options);
  EXPECT_TRUE(successor) << successor.error().message();
  if (!successor) return outcome;

  auto to = SocketAddress::parse("127.0.0.1:" + std::to_string(port));
  std::vector<UniqueFd> clients;
  for (int i = 0; i < kClients; ++i) {
    auto client = socketInNetns(ns->get(), AF_INET, SOCK_STREAM);
    EXPECT_TRUE(client);
    if (!client) return outcome;
    EXPECT_EQ(::connect(client->get(), to->sockaddrPtr(), to->length()), 0) << std::strerror(errno);
    char byte = static_cast<char>('a' + i % 26);
    EXPECT_EQ(::send(client->get(), &byte, 1, MSG_NOSIGNAL), 1);
    clients.push_back(std::move(*client));
  }
  old->reset();  // the old tunnel lets go of its listener

  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (outcome.accepted < kClients && std::chrono::steady_clock::now() < deadline) {
    pollfd p{successor->get(), POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    UniqueFd accepted(::accept4(successor->get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!accepted) continue;
    ++outcome.accepted;
    pollfd r{accepted.get(), POLLIN, 0};
    char byte = 0;
    if (::poll(&r, 1, 1000) == 1 && ::recv(accepted.get(), &byte, 1, 0) == 1 && byte >= 'a' && byte <= 'z') {
      ++outcome.intactBytes;
    }
  }
  return outcome;
}

TEST(ListenerMigration, ConnectionsQueuedAtAClosedListenerAreAcceptedByItsSuccessor) {
  SLUICE_REQUIRE_PRIVILEGES();
  auto migration = ListenerMigration::load();
  ASSERT_TRUE(migration) << migration.error().message();
  Outcome with = handOver(migration->programFd());
  EXPECT_EQ(with.accepted, kClients) << "connections were lost when the old listener closed";
  EXPECT_EQ(with.intactBytes, kClients);

  // The control: without the program the kernel resets what the old listener had queued
  // (kClients connections hashed over two listeners: all on the successor has odds 2^-64).
  Outcome without = handOver(-1);
  EXPECT_LT(without.accepted, kClients);
}

}  // namespace
}  // namespace sluice::ztunnel
