// The relay without root: real io_uring and real TCP sockets on loopback (a connected pair
// stands in for app <-> tunnel and tunnel <-> server), and scripted in-memory endpoints for
// orderings sockets cannot produce on demand.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <deque>
#include <functional>
#include <random>

#include "engine/event_loop.h"
#include "engine/relay.h"
#include "engine/socket_endpoint.h"
#include "proxy/pod_socket_factory.h"
#include "sluice/common/socket_address.h"

namespace sluice::ztunnel {
namespace {

using namespace std::chrono_literals;

// Two connected TCP sockets on 127.0.0.1 (no root needed).
std::pair<UniqueFd, UniqueFd> tcpPair() {
  auto listener = LocalSocketFactory().listener(PodRuntime{}, "127.0.0.1:0", false);
  EXPECT_TRUE(listener);
  SocketAddress at = localAddress(listener->get());
  UniqueFd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_EQ(::connect(client.get(), at.sockaddrPtr(), at.length()), 0);
  UniqueFd server(::accept4(listener->get(), nullptr, nullptr, SOCK_CLOEXEC));
  return {std::move(client), std::move(server)};
}

void nonBlocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

class RelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EventLoopOptions options;
    options.buffers = {64, 4096, 16, 64 * 1024};
    auto loop = EventLoop::create(options);
    ASSERT_TRUE(loop) << loop.error().message();
    loop_ = std::move(*loop);
    pod_ = std::make_shared<PodRuntime>();
    pod_->name = "relay-test";
    pod_->ns = "default";
  }

  // app <-> [down | relay | up] <-> server. The test holds `app_` and `server_`.
  Relay& socketRelay() {
    auto [app, downSide] = tcpPair();
    auto [upSide, server] = tcpPair();
    app_ = std::move(app);
    server_ = std::move(server);
    nonBlocking(app_.get());
    nonBlocking(server_.get());
    Relay& relay = loop_->add<Relay>(*loop_, RelayInfo{pod_, Direction::kOutbound}, 1h, &live_);
    auto down = std::make_unique<SocketEndpoint>(*loop_, relay, relay, Relay::kDownOps, std::move(downSide), &pod_->buffers);
    auto up = std::make_unique<SocketEndpoint>(*loop_, relay, relay, Relay::kUpOps, std::move(upSide), &pod_->buffers);
    Endpoint& upstream = *up;
    relay.attach(std::move(down), std::move(up));
    relay.onEndpointConnected(upstream, true, FailReason::kCount);  // the pair is connected already
    return relay;
  }

  // Runs the loop until `done` or 10 s.
  bool runUntil(const std::function<bool()>& done) {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      loop_->runOnce(5ms);
    }
    return true;
  }

  // Reads what is available on `fd` into `into`; returns false at EOF or error (errno kept).
  static bool drain(int fd, std::string& into) {
    char buf[65536];
    for (;;) {
      ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n > 0) {
        into.append(buf, static_cast<size_t>(n));
        continue;
      }
      return n < 0 && errno == EAGAIN;
    }
  }

  static std::string pattern(size_t n, unsigned seed) {
    std::mt19937 random(seed);
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(random());
    return s;
  }

  // Pushes `data` into `from` while draining `to`, running the loop, until all arrived.
  bool transfer(int from, int to, const std::string& data, std::string& received) {
    size_t sent = 0;
    return runUntil([&] {
      if (sent < data.size()) {
        ssize_t n = ::send(from, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
        if (n > 0) sent += static_cast<size_t>(n);
      }
      drain(to, received);
      return received.size() >= data.size();
    });
  }

  std::unique_ptr<EventLoop> loop_;
  std::shared_ptr<PodRuntime> pod_;
  std::atomic<size_t> live_{0};
  UniqueFd app_, server_;
};

TEST_F(RelayTest, CarriesBytesExactlyBothWaysAndReturnsEveryBuffer) {
  socketRelay();
  std::string up = pattern(3 << 20, 1), down = pattern(1 << 20, 2), gotUp, gotDown;
  ASSERT_TRUE(transfer(app_.get(), server_.get(), up, gotUp));
  ASSERT_TRUE(transfer(server_.get(), app_.get(), down, gotDown));
  EXPECT_TRUE(gotUp == up) << "upstream bytes differ";
  EXPECT_TRUE(gotDown == down) << "downstream bytes differ";
  EXPECT_EQ(pod_->counters.bytesFromClient[0].load(), up.size());
  EXPECT_EQ(pod_->counters.bytesToClient[0].load(), down.size());
  // Both close: the relay finishes, and every buffer and every charge comes back.
  app_.reset();
  server_.reset();
  ASSERT_TRUE(runUntil([&] { return loop_->handlerCount() == 0; }));
  loop_->runOnce(0ms);
  EXPECT_EQ(loop_->buffers().inUse(), 0u);
  EXPECT_EQ(pod_->buffers.heldBytes, 0u);
  EXPECT_EQ(live_.load(), 0u);
  EXPECT_EQ(pod_->counters.closed[0].load(), 1u);
}

TEST_F(RelayTest, HalfCloseIsCarriedAndTheOtherDirectionFlowsOn) {
  socketRelay();
  std::string got;
  ASSERT_TRUE(transfer(app_.get(), server_.get(), "request", got));
  ASSERT_EQ(::shutdown(app_.get(), SHUT_WR), 0);
  // The server sees EOF ...
  ASSERT_TRUE(runUntil([&] { return !drain(server_.get(), got); }));
  EXPECT_EQ(got, "request");
  // ... and can still answer, which the app reads, then ends its side too.
  std::string answer;
  ASSERT_TRUE(transfer(server_.get(), app_.get(), "response after half-close", answer));
  EXPECT_EQ(answer, "response after half-close");
  ASSERT_EQ(::shutdown(server_.get(), SHUT_WR), 0);
  ASSERT_TRUE(runUntil([&] { return !drain(app_.get(), answer); }));
  ASSERT_TRUE(runUntil([&] { return loop_->handlerCount() == 0; }));
}

TEST_F(RelayTest, AResetOnOneSideResetsTheOther) {
  socketRelay();
  std::string got;
  ASSERT_TRUE(transfer(app_.get(), server_.get(), "x", got));
  linger l{1, 0};
  ::setsockopt(app_.get(), SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  app_.reset();  // RST towards the relay
  ASSERT_TRUE(runUntil([&] { return loop_->handlerCount() == 0; }));
  // The server sees a reset, not an orderly end.
  pollfd p{server_.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 2000), 1);
  char c;
  EXPECT_EQ(::recv(server_.get(), &c, 1, 0), -1);
  EXPECT_EQ(errno, ECONNRESET);
  EXPECT_EQ(loop_->buffers().inUse(), 0u);
}

TEST_F(RelayTest, ASlowReaderStopsTheWriterWithBoundedMemory) {
  socketRelay();
  // The server reads nothing: the relay may hold at most kDepth chunks per direction; the
  // kernel buffers fill and the app's sends stop being accepted.
  std::string data = pattern(32 << 20, 3);
  size_t sent = 0;
  int stalled = 0;
  uint64_t maxHeld = 0;
  runUntil([&] {
    ssize_t n = ::send(app_.get(), data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      stalled = 0;
    } else {
      ++stalled;
    }
    maxHeld = std::max(maxHeld, pod_->buffers.heldBytes);
    return stalled > 200;  // ~1 s without progress
  });
  EXPECT_LT(sent, data.size()) << "the writer was never stopped";
  EXPECT_LE(maxHeld, uint64_t(Relay::kDepth) * 64 * 1024);
  // Once the server reads, everything arrives intact.
  std::string got;
  ASSERT_TRUE(runUntil([&] {
    if (sent < data.size()) {
      ssize_t n = ::send(app_.get(), data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n > 0) sent += static_cast<size_t>(n);
    }
    drain(server_.get(), got);
    return got.size() == data.size();
  }));
  EXPECT_TRUE(got == data);
}

TEST_F(RelayTest, AbortWithOperationsInFlightWaitsForThemThenReleasesEverything) {
  Relay& relay = socketRelay();
  // A send is stuck (the server does not read) and receives are armed on both sides.
  std::string data = pattern(8 << 20, 4);
  size_t sent = 0;
  for (int i = 0; i < 200; ++i) {
    ssize_t n = ::send(app_.get(), data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n > 0) sent += static_cast<size_t>(n);
    loop_->runOnce(1ms);
  }
  ASSERT_GT(pod_->buffers.heldBytes, 0u);
  relay.abort(true);
  EXPECT_EQ(loop_->handlerCount(), 1u) << "retired before its operations completed";
  ASSERT_TRUE(runUntil([&] { return loop_->handlerCount() == 0; }));
  loop_->runOnce(0ms);
  EXPECT_EQ(loop_->buffers().inUse(), 0u);
  EXPECT_EQ(pod_->buffers.heldBytes, 0u);
  EXPECT_EQ(pod_->counters.active.load(), 0);
}

// In-memory endpoint: a script of reads, and a record of what the relay did.
class ScriptedEndpoint final : public Endpoint {
 public:
  explicit ScriptedEndpoint(std::string name, std::vector<std::string>* log) : name_(std::move(name)), log_(log) {}
  std::deque<IoResult> reads;
  std::string written;
  bool closedForWrites = false, writeError = false;
  // As an HBONE client stream: takes writes before it is established, a half-close waits.
  bool takesEarly = false, established = false;
  int outstanding = 0;

  IoResult read() override {
    if (reads.empty()) return IoResult::pending();
    IoResult r = reads.front();
    reads.pop_front();
    if (r.kind == IoResult::Kind::kDone) ++outstanding;
    return r;
  }
  void release(const Chunk&) override {
    --outstanding;
    log_->push_back(name_ + " release");
  }
  IoResult write(std::span<const uint8_t> bytes) override {
    if (writeError) return IoResult::error();
    if (closedForWrites) return IoResult::closed();
    written.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    return IoResult::done(bytes.size());
  }
  bool writeClosed() const override { return closedForWrites; }
  bool takesEarlyWrites() const override { return takesEarly && !established; }
  IoResult shutdownWrite() override {
    if (takesEarly && !established) return IoResult::pending();
    log_->push_back(name_ + " shutdown");
    return IoResult::done();
  }
  void abort(bool reset) override { log_->push_back(name_ + (reset ? " abort reset" : " abort")); }
  bool quiescent() const override { return true; }
  void close() override { log_->push_back(name_ + " close"); }

 private:
  std::string name_;
  std::vector<std::string>* log_;
};

// A relay between two scripted endpoints, and the log of what it did to them.
struct Scripted {
  std::vector<std::string> log;
  Relay* relay = nullptr;
  ScriptedEndpoint* down = nullptr;
  ScriptedEndpoint* up = nullptr;
};
// `before` sets the endpoints up before they are attached.
std::unique_ptr<Scripted> scriptedRelay(EventLoop& loop, const std::shared_ptr<PodRuntime>& pod, std::atomic<size_t>& live,
                                        Direction direction,
                                        const std::function<void(ScriptedEndpoint&, ScriptedEndpoint&)>& before = {}) {
  auto s = std::make_unique<Scripted>();
  s->relay = &loop.add<Relay>(loop, RelayInfo{pod, direction}, std::chrono::hours(1), &live);
  auto down = std::make_unique<ScriptedEndpoint>("down", &s->log);
  auto up = std::make_unique<ScriptedEndpoint>("up", &s->log);
  s->down = down.get();
  s->up = up.get();
  if (before) before(*down, *up);
  s->relay->attach(std::move(down), std::move(up));
  return s;
}

IoResult bytes(const char* text) {
  return IoResult::data({reinterpret_cast<const uint8_t*>(text), static_cast<uint32_t>(std::strlen(text)), 0});
}

TEST_F(RelayTest, AnErrorOnOneSideAbortsBothThenClosesAfterGivingChunksBack) {
  auto s = scriptedRelay(*loop_, pod_, live_, Direction::kInbound);
  ScriptedEndpoint& d = *s->down;
  ScriptedEndpoint& u = *s->up;
  u.writeError = true;  // the upstream breaks on the first write
  d.reads = {bytes("a"), bytes("b")};
  s->relay->onEndpointConnected(u, true, FailReason::kCount);
  // The first chunk is written as soon as it is read (before the next read): the write fails,
  // both sides are aborted, the one chunk read is given back, then both are closed.
  EXPECT_EQ(s->log, (std::vector<std::string>{"down abort reset", "up abort reset", "down release", "down close",
                                              "up close"}));
  EXPECT_EQ(d.reads.size(), 1u) << "read past a failed write";
  EXPECT_EQ(d.outstanding, 0);
  EXPECT_EQ(live_.load(), 0u);
}

TEST_F(RelayTest, AReceiverThatClosedWithoutErrorEndsOnlyItsDirection) {
  auto s = scriptedRelay(*loop_, pod_, live_, Direction::kOutbound);
  ScriptedEndpoint& d = *s->down;
  ScriptedEndpoint& u = *s->up;
  auto& log = s->log;
  u.reads = {bytes("answer"), IoResult::eof()};
  u.closedForWrites = true;  // e.g. an HBONE peer that ended its stream with NO_ERROR
  s->relay->onEndpointConnected(u, true, FailReason::kCount);
  EXPECT_EQ(d.written, "answer");
  // The answer and the half-close reached the client; nothing was reset.
  for (const auto& entry : log) EXPECT_EQ(entry.find("reset"), std::string::npos) << entry;
  EXPECT_NE(std::find(log.begin(), log.end(), "down shutdown"), log.end());
  EXPECT_NE(std::find(log.begin(), log.end(), "down close"), log.end());
  EXPECT_EQ(pod_->counters.opened[0].load(), 1u);
  EXPECT_EQ(pod_->counters.closed[0].load(), 1u);
}

TEST_F(RelayTest, NothingFlowsBeforeTheUpstreamIsEstablishedAndAFailureIsCounted) {
  auto s = scriptedRelay(*loop_, pod_, live_, Direction::kOutbound);
  ScriptedEndpoint& d = *s->down;
  ScriptedEndpoint& u = *s->up;
  d.reads = {bytes("early")};
  s->relay->onEndpointProgress();
  EXPECT_EQ(d.reads.size(), 1u) << "read before the upstream was established";
  s->relay->onEndpointConnected(u, false, FailReason::kConnectRefused);
  EXPECT_EQ(u.written, "");
  EXPECT_EQ(pod_->counters.failed[static_cast<size_t>(FailReason::kConnectRefused)].load(), 1u);
  EXPECT_EQ(pod_->counters.opened[0].load(), 0u);
  EXPECT_EQ(loop_->handlerCount(), 0u);
}

// Early data: towards an upstream that takes early writes (an HBONE stream whose CONNECT is
// not answered yet), the client's bytes go at once; its half-close and anything towards the
// client wait for the upstream to be established.
TEST_F(RelayTest, TheClientsFirstBytesGoToAnUpstreamThatTakesEarlyWrites) {
  // Attached with the client's bytes already there: they go without any further event.
  auto s = scriptedRelay(*loop_, pod_, live_, Direction::kOutbound, [](ScriptedEndpoint& d, ScriptedEndpoint& u) {
    u.takesEarly = true;
    d.reads = {bytes("GET / "), bytes("HTTP/1.1"), IoResult::eof()};
    u.reads = {bytes("too soon")};
  });
  ScriptedEndpoint& d = *s->down;
  ScriptedEndpoint& u = *s->up;
  auto& log = s->log;
  EXPECT_EQ(u.written, "GET / HTTP/1.1") << "the client's bytes waited for the upstream";
  EXPECT_TRUE(d.reads.empty());
  EXPECT_EQ(d.written, "") << "bytes towards the client before the upstream was established";
  EXPECT_EQ(std::find(log.begin(), log.end(), "up shutdown"), log.end()) << "half-closed before the answer";
  EXPECT_EQ(pod_->counters.opened[0].load(), 0u);

  u.established = true;
  u.reads.push_back(IoResult::eof());
  s->relay->onEndpointConnected(u, true, FailReason::kCount);
  EXPECT_EQ(d.written, "too soon");
  EXPECT_NE(std::find(log.begin(), log.end(), "up shutdown"), log.end()) << "the half-close never followed";
  EXPECT_NE(std::find(log.begin(), log.end(), "down close"), log.end());
  EXPECT_EQ(pod_->counters.opened[0].load(), 1u);
  EXPECT_EQ(loop_->handlerCount(), 0u);
}

TEST_F(RelayTest, EarlyBytesToAnUpstreamThatThenFailsEndInAReset) {
  auto s = scriptedRelay(*loop_, pod_, live_, Direction::kOutbound, [](ScriptedEndpoint&, ScriptedEndpoint& u) { u.takesEarly = true; });
  ScriptedEndpoint& d = *s->down;
  ScriptedEndpoint& u = *s->up;
  d.reads = {bytes("hello")};
  s->relay->onEndpointProgress();  // the client's bytes arrive
  ASSERT_EQ(u.written, "hello");
  s->relay->onEndpointConnected(u, false, FailReason::kHboneRefused);
  EXPECT_NE(std::find(s->log.begin(), s->log.end(), "down abort reset"), s->log.end()) << "the app was not reset";
  EXPECT_EQ(d.outstanding, 0) << "a chunk was not given back";
  EXPECT_EQ(pod_->counters.failed[static_cast<size_t>(FailReason::kHboneRefused)].load(), 1u);
  EXPECT_EQ(pod_->counters.opened[0].load(), 0u);
  EXPECT_EQ(loop_->handlerCount(), 0u);
}

}  // namespace
}  // namespace sluice::ztunnel
