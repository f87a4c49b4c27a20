// sluice-test-ztunnel: the tunnel's stand-in for agent tests (issue 3), until the real ztunnel
// exists. Speaks the tunnel's side of proto/sluice/zds/v1 to the agent: on AddWorkload it
// creates the pod's listeners inside the passed namespace (tests/support/standin_tunnel.h) and
// acknowledges with the inbound listener attached; on DelWorkload it closes them; after a
// replay's SnapshotSent it drops pods the replay did not mention. Every accepted connection is
// printed as one JSON line on stdout, for the test to read:
//   {"accepted":{"pod":"ns/name","listener":15001,"local":..,"peer":..,"origDst":..}}
// It reconnects when the agent goes away, keeping its pods' listeners (as the real tunnel must).
#include <sys/socket.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "sluice/common/netns.h"
#include "sluice/common/unix_socket.h"
#include "sluice/zds/v1/zds.pb.h"
#include "support/standin_tunnel.h"
#include "sluice_capture.h"

using namespace sluice;
using nlohmann::json;

namespace {

std::mutex outputMutex;

void announce(const json& line) {
  std::lock_guard lock(outputMutex);
  std::cout << line.dump() << std::endl;
}

struct PodState {
  std::string key;
  std::unique_ptr<testing::StandinTunnel> listeners;
};

bool reply(int conn, const std::string& error, int listenerFd = -1) {
  zds::v1::WorkloadResponse response;
  response.mutable_ack()->set_error(error);
  int fds[1] = {listenerFd};
  if (listenerFd >= 0) response.mutable_ack()->set_inbound_listeners(1);
  return sendMessage(conn, response.SerializeAsString(),
                     listenerFd >= 0 ? std::span<const int>(fds, 1) : std::span<const int>())
      .has_value();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"stand-in tunnel for agent tests"};
  std::string zdsSocket, pinDir;
  uint32_t mark = SLUICE_TUNNEL_MARK_DEFAULT;
  app.add_option("--zds-socket", zdsSocket)->required();
  app.add_option("--pin-dir", pinDir)->required();
  app.add_option("--mark", mark);
  CLI11_PARSE(app, argc, argv);

  std::map<std::string, PodState> pods;  // by uid
  for (;;) {
    auto conn = connectUnix(zdsSocket, SOCK_SEQPACKET);
    if (!conn) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    announce({{"connected", zdsSocket}});
    std::set<std::string> seenInReplay;
    for (;;) {
      auto msg = receiveMessage(conn->get(), 64 * 1024, 1, std::chrono::milliseconds(-1));
      if (!msg || msg->eof) break;
      zds::v1::WorkloadRequest request;
      if (!request.ParseFromString(msg->bytes)) {
        reply(conn->get(), "malformed request");
        continue;
      }
      if (request.has_add()) {
        const auto& w = request.add().workload();
        if (msg->fds.size() != 1) {
          reply(conn->get(), "AddWorkload without a network namespace descriptor");
          continue;
        }
        seenInReplay.insert(w.uid());
        auto it = pods.find(w.uid());
        if (it == pods.end()) {
          auto cookie = netnsCookie(msg->fds[0].get());
          std::string key = w.namespace_() + "/" + w.name();
          auto listeners = cookie ? testing::StandinTunnel::start(
                                        msg->fds[0].get(), *cookie, pinDir, mark,
                                        [key](const testing::AcceptedConnection& a) {
                                          json j{{"pod", key}, {"listener", a.listenerPort},
                                                 {"local", a.local.toString()}, {"peer", a.peer.toString()}};
                                          if (a.origDst) j["origDst"] = a.origDst->toString();
                                          else if (!a.origDstError.empty()) j["origDstError"] = a.origDstError;
                                          announce({{"accepted", j}});
                                        })
                                  : Result<std::unique_ptr<testing::StandinTunnel>>(fail(cookie.error()));
          if (!listeners) {
            reply(conn->get(), listeners.error().message());
            continue;
          }
          it = pods.emplace(w.uid(), PodState{key, std::move(*listeners)}).first;
          announce({{"added", key}});
        } else {
          announce({{"kept", it->second.key}});  // replayed: the same listeners stay
        }
        reply(conn->get(), "", it->second.listeners->inboundListenerFd());
      } else if (request.has_keep()) {
        seenInReplay.insert(request.keep().uid());
        reply(conn->get(), "");
      } else if (request.has_del()) {
        auto it = pods.find(request.del().uid());
        if (it != pods.end()) {
          announce({{"removed", it->second.key}});
          pods.erase(it);
        }
        reply(conn->get(), "");
      } else if (request.has_snapshot_sent()) {
        for (auto it = pods.begin(); it != pods.end();) {
          if (seenInReplay.count(it->first) == 0) {
            announce({{"dropped", it->second.key}});
            it = pods.erase(it);
          } else {
            ++it;
          }
        }
        announce({{"snapshot", pods.size()}});
        reply(conn->get(), "");
      } else {
        reply(conn->get(), "unknown request");
      }
    }
    announce({{"disconnected", zdsSocket}});
  }
}
