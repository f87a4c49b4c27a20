// The inbound capture decision (sluice_pod_sk_lookup) run in the kernel on chosen inputs with
// BPF_PROG_TEST_RUN, from a table: the pod's own instance of the program, the real maps a
// CaptureDatapath fills for an enrolled pod, and real listening sockets in the listener map. Each row says whether the
// connection is steered to the tunnel's listener, left alone, or dropped, and which per-pod
// counter records it. (connect4/6 cannot be test-run: capture_datapath_test covers them with
// real connections.)
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include "capture/capture_datapath.h"
#include "capture/delivery_table.h"
#include "capture/transparent_delivery.h"
#include "simcluster/cluster.h"
#include "sluice/common/netns.h"
#include "support/privileged.h"
#include "support/tunnel_stats.h"

namespace sluice::agent {
namespace {

enum class Outcome { kSteered, kPassed, kDropped };

struct LookupCase {
  const char* name;
  int family;
  int protocol;
  const char* src;
  const char* dst;  // "pod4"/"pod6" stand for the pod's addresses
  uint16_t dstPort;
  Outcome outcome;
  int counter;  // the per-pod counter that moves; -1: none (not an enrolled pod's address)
  bool registered = false;  // the source is a delivery registered in the tunnel's table
};

uint64_t socketCookie(int fd) {
  uint64_t cookie = 0;
  socklen_t len = sizeof(cookie);
  return ::getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) == 0 ? cookie : 0;
}

class SkLookupDecisionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SLUICE_REQUIRE_PRIVILEGES();
    auto cluster = sim::Cluster::create({.nodes = 1});
    ASSERT_TRUE(cluster) << cluster.error().message();
    cluster_ = std::move(*cluster);
    ASSERT_TRUE(cluster_->addPod(0, "server"));
    auto dp = CaptureDatapath::open({.pinDir = cluster_->node(0).bpffsDir, .cgroupPath = cluster_->node(0).cgroupPath,
                                     .tunnelMark = SLUICE_TUNNEL_MARK_DEFAULT});
    ASSERT_TRUE(dp) << dp.error().message();
    datapath_ = std::move(*dp);
    pod_ = cluster_->pod("server");
    auto cookie = netnsCookie(pod_->netnsFd.get());
    ASSERT_TRUE(cookie);
    cookie_ = *cookie;
    auto plan = planPodCapture({.addresses = {pod_->ipv4, pod_->ipv6}, .annotations = {{kExcludeInboundPorts, "9090"}}});
    ASSERT_TRUE(plan) << plan.error().message();
    ASSERT_TRUE(datapath_->installPod(cookie_, pod_->netnsFd.get(), *plan));
    // The tunnel's inbound listeners: real listening sockets inside the pod.
    for (auto [family, address] : {std::pair{AF_INET, "0.0.0.0:15006"}, std::pair{AF_INET6, "[::]:15006"}}) {
      auto listener = listenInNetns(pod_->netnsFd.get(), address, {.mark = SLUICE_TUNNEL_MARK_DEFAULT});
      ASSERT_TRUE(listener) << listener.error().message();
      ASSERT_TRUE(datapath_->setInboundListener(cookie_, family, listener->get()));
      listeners_[family == AF_INET ? 0 : 1] = std::move(*listener);
    }
    ASSERT_TRUE(datapath_->setRedirect(cookie_, true));
  }

  // Runs the program once; the outcome and the cookie of the socket it selected (0: none).
  std::pair<Outcome, uint64_t> run(const LookupCase& c) {
    bpf_sk_lookup ctx{};
    ctx.family = static_cast<uint32_t>(c.family);
    ctx.protocol = static_cast<uint32_t>(c.protocol);
    std::string dst = std::string(c.dst) == "pod4" ? pod_->ipv4 : std::string(c.dst) == "pod6" ? pod_->ipv6 : c.dst;
    if (c.family == AF_INET) {
      EXPECT_EQ(::inet_pton(AF_INET, c.src, &ctx.remote_ip4), 1) << c.src;
      EXPECT_EQ(::inet_pton(AF_INET, dst.c_str(), &ctx.local_ip4), 1) << dst;
    } else {
      EXPECT_EQ(::inet_pton(AF_INET6, c.src, ctx.remote_ip6), 1) << c.src;
      EXPECT_EQ(::inet_pton(AF_INET6, dst.c_str(), ctx.local_ip6), 1) << dst;
    }
    ctx.remote_port = htons(40000);  // network byte order, as the kernel fills it
    ctx.local_port = c.dstPort;      // host byte order
    bpf_sk_lookup out{};
    LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = &ctx, .ctx_out = &out, .ctx_size_in = sizeof(ctx),
                .ctx_size_out = sizeof(out));
    auto program = datapath_->podInboundProgram(cookie_);
    EXPECT_TRUE(program) << program.error().message();
    if (!program) return {Outcome::kPassed, 0};
    int err = bpf_prog_test_run_opts(program->get(), &opts);
    EXPECT_EQ(err, 0) << c.name << ": BPF_PROG_TEST_RUN: " << strerror(-err);
    Outcome outcome = opts.retval == SK_DROP ? Outcome::kDropped : out.cookie != 0 ? Outcome::kSteered : Outcome::kPassed;
    return {outcome, out.cookie};
  }

  // For real deliveries: a client pod beside the server, the server pod's routing for
  // transparent delivery (as the agent sets it), the tunnel's delivery table and an app
  // listening on 8080.
  void setUpDeliveries() {
    ASSERT_TRUE(cluster_->addPod(0, "client"));
    ASSERT_TRUE(enableTransparentDelivery(pod_->netnsFd.get(), {.mark = SLUICE_DELIVERY_MARK_DEFAULT,
                                                                .table = SLUICE_DELIVERY_ROUTE_TABLE,
                                                                .rulePriority = SLUICE_DELIVERY_RULE_PRIORITY}));
    auto table = DeliveryTable::open(cluster_->node(0).bpffsDir);
    ASSERT_TRUE(table) << table.error().message();
    table_ = std::move(*table);
    auto app = listenInNetns(pod_->netnsFd.get(), "0.0.0.0:8080", {});
    ASSERT_TRUE(app) << app.error().message();
    app_ = std::move(*app);
  }

  // The peer of the next connection `listener` accepts within 2 s; nullopt when none comes.
  static std::optional<SocketAddress> acceptOn(int listener) {
    pollfd p{listener, POLLIN, 0};
    if (::poll(&p, 1, 2000) != 1) return std::nullopt;
    sockaddr_storage peer{};
    socklen_t len = sizeof(peer);
    UniqueFd accepted(::accept4(listener, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC));
    if (!accepted) return std::nullopt;
    return SocketAddress::fromSockaddr(reinterpret_cast<const sockaddr*>(&peer), len);
  }

  // A connection to the server pod's 8080 from ip:port in `netnsFd`; `asDelivery` makes the
  // socket as the tunnel makes its deliveries (PodSocketFactory::delivery): the delivery
  // mark, IP_TRANSPARENT, bound to "lo".
  // `complete`: wait for the handshake; otherwise only send the SYN (a captured delivery never
  // completes: the tunnel's listener answers with its own mark, which the pod routes away).
  UniqueFd connectFrom(int netnsFd, const std::string& ip, uint16_t port, bool asDelivery, bool complete = true) {
    auto fd = socketInNetns(netnsFd, AF_INET, complete ? SOCK_STREAM : SOCK_STREAM | SOCK_NONBLOCK);
    EXPECT_TRUE(fd) << fd.error().message();
    if (!fd) return UniqueFd();
    int one = 1;
    EXPECT_EQ(::setsockopt(fd->get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
    if (asDelivery) {
      uint32_t mark = SLUICE_DELIVERY_MARK_DEFAULT;
      EXPECT_EQ(::setsockopt(fd->get(), SOL_SOCKET, SO_MARK, &mark, sizeof(mark)), 0);
      EXPECT_EQ(::setsockopt(fd->get(), SOL_IP, IP_TRANSPARENT, &one, sizeof(one)), 0);
      EXPECT_EQ(::setsockopt(fd->get(), SOL_SOCKET, SO_BINDTODEVICE, "lo", 3), 0);
    }
    auto source = SocketAddress::fromIp(ip, port);
    auto server = SocketAddress::fromIp(pod_->ipv4, 8080);
    EXPECT_EQ(::bind(fd->get(), source->sockaddrPtr(), source->length()), 0) << strerror(errno);
    int rc = ::connect(fd->get(), server->sockaddrPtr(), server->length());
    EXPECT_TRUE(rc == 0 || (!complete && errno == EINPROGRESS)) << strerror(errno);
    return std::move(*fd);
  }

  // Sends a delivery's SYN from ip:port and says whether the pod's program captured it (steered
  // it to the tunnel's listener) while the app was handed nothing.
  bool deliveryCaptured(const std::string& ip, uint16_t port) {
    auto before = datapath_->counters(cookie_);
    UniqueFd delivery = connectFrom(pod_->netnsFd.get(), ip, port, true, false);
    bool captured = waitFor([&] {
      auto now = datapath_->counters(cookie_);
      return before && now && now->value[SLUICE_CTR_INBOUND_CAPTURED] > before->value[SLUICE_CTR_INBOUND_CAPTURED];
    }, std::chrono::seconds(2));
    pollfd p{app_.get(), POLLIN, 0};
    return captured && ::poll(&p, 1, 100) == 0;
  }

  std::unique_ptr<sim::Cluster> cluster_;
  std::unique_ptr<CaptureDatapath> datapath_;
  const sim::Pod* pod_ = nullptr;
  uint64_t cookie_ = 0;
  UniqueFd listeners_[2];
  std::shared_ptr<const DeliveryTable> table_;
  UniqueFd app_;
};

TEST_F(SkLookupDecisionTest, InboundDecisionsFollowTheTable) {
  const LookupCase cases[] = {
      {"TCP to the pod's IPv4", AF_INET, IPPROTO_TCP, "10.244.9.9", "pod4", 8080, Outcome::kSteered, SLUICE_CTR_INBOUND_CAPTURED},
      {"TCP to the pod's IPv6", AF_INET6, IPPROTO_TCP, "fd00:10:244:9::9", "pod6", 8080, Outcome::kSteered,
       SLUICE_CTR_INBOUND_CAPTURED},
      {"HBONE port", AF_INET, IPPROTO_TCP, "10.244.9.9", "pod4", 15008, Outcome::kPassed, SLUICE_CTR_INBOUND_HBONE},
      {"HBONE port, IPv6", AF_INET6, IPPROTO_TCP, "fd00:10:244:9::9", "pod6", 15008, Outcome::kPassed, SLUICE_CTR_INBOUND_HBONE},
      {"from the pod itself", AF_INET, IPPROTO_TCP, "pod4", "pod4", 8080, Outcome::kPassed, SLUICE_CTR_INBOUND_LOCAL_SOURCE},
      {"from loopback", AF_INET6, IPPROTO_TCP, "::1", "pod6", 8080, Outcome::kPassed, SLUICE_CTR_INBOUND_LOCAL_SOURCE},
      {"excluded inbound port", AF_INET, IPPROTO_TCP, "10.244.9.9", "pod4", 9090, Outcome::kPassed,
       SLUICE_CTR_INBOUND_EXCLUDED_PORT},
      {"UDP is not captured", AF_INET, IPPROTO_UDP, "10.244.9.9", "pod4", 53, Outcome::kPassed, -1},
      {"loopback destination", AF_INET, IPPROTO_TCP, "127.0.0.1", "127.0.0.1", 8080, Outcome::kPassed, -1},
      {"loopback destination, IPv6", AF_INET6, IPPROTO_TCP, "::1", "::1", 8080, Outcome::kPassed, -1},
      // Addresses nobody reported to the agent are the pod's too: decided, never passed.
      {"link-local IPv6 from a neighbour", AF_INET6, IPPROTO_TCP, "fe80::1", "fe80::a8c1:abff:fe00:1", 8080,
       Outcome::kSteered, SLUICE_CTR_INBOUND_CAPTURED},
      {"SLAAC IPv6 nobody reported", AF_INET6, IPPROTO_TCP, "fd00:10:244:9::9", "2001:db8::a8c1:abff:fe00:1", 8080,
       Outcome::kSteered, SLUICE_CTR_INBOUND_CAPTURED},
      {"an IPv4 address nobody reported", AF_INET, IPPROTO_TCP, "10.244.9.9", "192.0.2.7", 8080, Outcome::kSteered,
       SLUICE_CTR_INBOUND_CAPTURED},
      {"the pod to its own link-local address", AF_INET6, IPPROTO_TCP, "fe80::a8c1:abff:fe00:1", "fe80::a8c1:abff:fe00:1",
       8080, Outcome::kPassed, SLUICE_CTR_INBOUND_LOCAL_SOURCE},
      // The tunnel delivering from the client's address: let through only with the exact
      // source and port the tunnel registered.
      // A registered source is a delivery only on the pod's loopback; test-run presents no
      // ingress device, as a packet from outside would not be on loopback: captured.
      // (ARegisteredSourceIsADeliveryOnlyOnThePodsLoopback sends real packets both ways.)
      {"a registered source off loopback", AF_INET, IPPROTO_TCP, "10.244.9.9", "pod4", 8080, Outcome::kSteered,
       SLUICE_CTR_INBOUND_CAPTURED, true},
      {"a registered IPv6 source off loopback", AF_INET6, IPPROTO_TCP, "fd00:10:244:9::9", "pod6", 8080, Outcome::kSteered,
       SLUICE_CTR_INBOUND_CAPTURED, true},
  };
  for (const auto& c : cases) {
    std::string src = std::string(c.src) == "pod4" ? pod_->ipv4 : c.src;
    LookupCase resolved = c;
    resolved.src = src.c_str();
    std::shared_ptr<void> registration;
    if (c.registered) {
      auto table = DeliveryTable::open(cluster_->node(0).bpffsDir);
      ASSERT_TRUE(table) << table.error().message();
      auto added = (*table)->add(cookie_, *SocketAddress::fromIp(src, 40000), c.dstPort);
      ASSERT_TRUE(added) << added.error().message();
      registration = std::move(*added);
    }
    auto before = datapath_->counters(cookie_);
    ASSERT_TRUE(before);
    auto [outcome, selected] = run(resolved);
    EXPECT_EQ(outcome, c.outcome) << c.name;
    if (c.outcome == Outcome::kSteered) {
      EXPECT_EQ(selected, socketCookie(listeners_[c.family == AF_INET ? 0 : 1].get()))
          << c.name << ": steered to the tunnel's listener of its family";
    }
    auto after = datapath_->counters(cookie_);
    ASSERT_TRUE(after);
    for (int i = 0; i < SLUICE_CTR_MAX; ++i) {
      EXPECT_EQ(after->value[i] - before->value[i], i == c.counter ? 1u : 0u) << c.name << ": counter " << i;
    }
  }
}

TEST_F(SkLookupDecisionTest, ADeliveryIsLetInOnlyForItsExactSourceAndOnlyWhileRegistered) {
  ASSERT_NO_FATAL_FAILURE(setUpDeliveries());
  const std::string clientIp = cluster_->pod("client")->ipv4;
  // Another port of the same client, or another app port: captured (the tunnel's listener).
  auto otherPort = table_->add(cookie_, *SocketAddress::fromIp(clientIp, 40001), 8080);
  ASSERT_TRUE(otherPort);
  auto otherApp = table_->add(cookie_, *SocketAddress::fromIp(clientIp, 40000), 8081);
  ASSERT_TRUE(otherApp);
  EXPECT_TRUE(deliveryCaptured(clientIp, 40000)) << "an unregistered delivery was not captured";
  {
    auto exact = table_->add(cookie_, *SocketAddress::fromIp(clientIp, 40006), 8080);
    ASSERT_TRUE(exact);
    UniqueFd delivery = connectFrom(pod_->netnsFd.get(), clientIp, 40006, true);
    EXPECT_TRUE(acceptOn(app_.get())) << "the registered delivery did not reach the app";
  }
  // The registration ended with its handle: captured again.
  EXPECT_TRUE(deliveryCaptured(clientIp, 40006)) << "a delivery whose registration ended was not captured";
}

// With real packets (BPF_PROG_TEST_RUN cannot set the ingress device): a registered source is
// a delivery only on the pod's loopback, where the tunnel's delivery sockets are bound. The same
// registered address and port from another pod, as a registration a dead tunnel left behind
// would meet it or a spoof would try, arrives on the pod's veth and lands on the tunnel's
// listener like any client's connection; the app never sees it.
TEST_F(SkLookupDecisionTest, ARegisteredSourceIsADeliveryOnlyOnThePodsLoopback) {
  ASSERT_NO_FATAL_FAILURE(setUpDeliveries());
  const sim::Pod* client = cluster_->pod("client");
  // The tunnel's delivery from the client's address, registered: the app accepts it, from
  // the client's address and port.
  {
    auto registration = table_->add(cookie_, *SocketAddress::fromIp(client->ipv4, 40002), 8080);
    ASSERT_TRUE(registration) << registration.error().message();
    UniqueFd delivery = connectFrom(pod_->netnsFd.get(), client->ipv4, 40002, true);
    auto peer = acceptOn(app_.get());
    ASSERT_TRUE(peer) << "the registered delivery did not reach the app";
    EXPECT_EQ(peer->toString(), client->ipv4 + ":40002");
  }
  // The client pod itself, from a registered address and port: captured.
  auto registration = table_->add(cookie_, *SocketAddress::fromIp(client->ipv4, 40004), 8080);
  ASSERT_TRUE(registration) << registration.error().message();
  auto before = datapath_->counters(cookie_);
  ASSERT_TRUE(before);
  UniqueFd fromOutside = connectFrom(client->netnsFd.get(), client->ipv4, 40004, false);
  auto steered = acceptOn(listeners_[0].get());
  ASSERT_TRUE(steered) << "a registered source from outside did not land on the tunnel's listener";
  EXPECT_EQ(steered->toString(), client->ipv4 + ":40004");
  pollfd p{app_.get(), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 0), 0) << "the app was handed a connection the tunnel never saw";
  auto after = datapath_->counters(cookie_);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->value[SLUICE_CTR_INBOUND_CAPTURED] - before->value[SLUICE_CTR_INBOUND_CAPTURED], 1u);
  EXPECT_EQ(after->value[SLUICE_CTR_INBOUND_LOCAL_SOURCE] - before->value[SLUICE_CTR_INBOUND_LOCAL_SOURCE], 0u);
}

TEST_F(SkLookupDecisionTest, EnrolledPodWithoutListenerDropsAndRedirectOffPasses) {
  // No listener for a family: fail closed (dropped, the client's SYN is retried).
  ASSERT_TRUE(datapath_->removePod(cookie_));
  auto plan = planPodCapture({.addresses = {pod_->ipv4, pod_->ipv6}, .annotations = {}});
  ASSERT_TRUE(plan);
  ASSERT_TRUE(datapath_->installPod(cookie_, pod_->netnsFd.get(), *plan));
  ASSERT_TRUE(datapath_->setRedirect(cookie_, true));
  LookupCase tcp{"TCP without listener", AF_INET, IPPROTO_TCP, "10.244.9.9", "pod4", 8080, Outcome::kDropped,
                 SLUICE_CTR_INBOUND_NO_LISTENER};
  EXPECT_EQ(run(tcp).first, Outcome::kDropped);
  auto counters = datapath_->counters(cookie_);
  ASSERT_TRUE(counters);
  EXPECT_EQ(counters->value[SLUICE_CTR_INBOUND_NO_LISTENER], 1u);
  // Redirection off (enrolling, or the tunnel has not acknowledged): nothing is touched.
  ASSERT_TRUE(datapath_->setRedirect(cookie_, false));
  EXPECT_EQ(run(tcp).first, Outcome::kPassed);
}

}  // namespace
}  // namespace sluice::agent
