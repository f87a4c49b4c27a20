// The listener without root: it accepts with one multishot accept, and when the process runs
// out of descriptors it backs off instead of spinning, then accepts what waited in the backlog.
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <vector>

#include "engine/event_loop.h"
#include "engine/listener.h"
#include "proxy/pod_socket_factory.h"
#include "sluice/common/socket_address.h"

namespace sluice::ztunnel {
namespace {

using namespace std::chrono_literals;

struct Collect final : Acceptor {
  std::vector<UniqueFd>* into;
  explicit Collect(std::vector<UniqueFd>* v) : into(v) {}
  void onAccepted(UniqueFd fd) override { into->push_back(std::move(fd)); }
};

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

TEST(Listener, BacksOffWhenOutOfDescriptorsThenAcceptsWhatWaited) {
  // The sanitizers' runtime checks open a pipe to probe memory; with every descriptor spent
  // they report false errors. The plain build runs this test.
  if (kSanitized) GTEST_SKIP() << "exhausts descriptors, which the sanitizer runtime needs";
  auto loop = EventLoop::create({.ringEntries = 64, .buffers = {64, 4096, 16, 65536}});
  ASSERT_TRUE(loop) << loop.error().message();
  auto fd = LocalSocketFactory().listener(PodRuntime{}, "127.0.0.1:0", false);
  ASSERT_TRUE(fd) << fd.error().message();
  SocketAddress at = localAddress(fd->get());
  std::vector<UniqueFd> accepted;
  Listener& listener = (*loop)->add<Listener>(**loop, std::move(*fd), std::make_unique<Collect>(&accepted), nullptr);
  listener.start();

  // Spend every descriptor the (lowered) limit allows, then connect three clients.
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  std::vector<UniqueFd> clients;
  for (int i = 0; i < 3; ++i) clients.emplace_back(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  std::vector<UniqueFd> filler;
  int lowestFree = ::dup(0);
  ::close(lowestFree);
  rlimit low{static_cast<rlim_t>(lowestFree) + 8, saved.rlim_max};
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  for (int f; (f = ::dup(0)) >= 0;) filler.emplace_back(f);
  for (auto& c : clients) ASSERT_EQ(::connect(c.get(), at.sockaddrPtr(), at.length()), 0);
  for (int i = 0; i < 20 && listener.backoffs() == 0; ++i) (*loop)->runOnce(20ms);
  EXPECT_GE(listener.backoffs(), 1u) << "EMFILE did not make the listener back off";
  EXPECT_LE(listener.backoffs(), 10u) << "the listener spun on EMFILE";
  EXPECT_TRUE(accepted.empty());

  // Descriptors come back: the clients that waited in the backlog are accepted.
  filler.clear();
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  for (int i = 0; i < 200 && accepted.size() < 3; ++i) (*loop)->runOnce(20ms);
  EXPECT_EQ(accepted.size(), 3u);
}

}  // namespace
}  // namespace sluice::ztunnel
