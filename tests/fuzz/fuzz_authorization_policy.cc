// libFuzzer: the controller's YAML loading of AuthorizationPolicy/PeerAuthentication (and any
// other kind the bytes claim: LocalRateLimit, DestinationRule, ...), then the data path's
// evaluation of what was accepted and the snapshot the tunnel builds from it. None may crash
// on hostile input; refusals are values.
#include <cstddef>
#include <cstdint>
#include <string>

#include "authz/authorization.h"
#include "authz/peer_authentication.h"
#include "proxy/snapshot_builder.h"
#include "config/config_loader.h"

using namespace sluice;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  controller::ConfigSet config;
  std::string text(reinterpret_cast<const char*>(data), size);
  if (!controller::loadConfigText("fuzz.yaml", text, config)) return 0;
  std::vector<const config::v1::AuthorizationPolicy*> policies;
  std::vector<std::shared_ptr<const config::v1::PeerAuthentication>> peer;
  for (const auto& [name, loaded] : config.resources) {
    if (loaded.resource.has_authorization_policy()) policies.push_back(&loaded.resource.authorization_policy());
    if (loaded.resource.has_peer_authentication()) {
      peer.push_back(std::make_shared<config::v1::PeerAuthentication>(loaded.resource.peer_authentication()));
    }
  }
  std::map<std::string, std::string> labels{{"app", "db"}};
  auto applicable = ztunnel::applicablePolicies(policies, "shop", labels);
  for (const char* principal : {"", "cluster.local/ns/shop/sa/web"}) {
    for (const char* ip : {"10.0.0.1", "fd00::1", "garbage"}) {
      (void)ztunnel::authorize(applicable, {principal, ip, 8080});
    }
  }
  (void)ztunnel::effectiveMtlsMode(peer, "shop", labels, 8080);
  std::map<std::string, config::v1::Resource> resources;
  for (const auto& [name, loaded] : config.resources) resources[name] = loaded.resource;
  (void)ztunnel::buildSnapshot(resources);
  return 0;
}
