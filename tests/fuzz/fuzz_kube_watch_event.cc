// The Kubernetes source's path for bytes from the API server: a watch line is parsed, applied
// to a cache, turned into the loader's document and loaded; and the same bytes as a list page.
// Invariants: no crash or leak; an event refused by the parser changes nothing in the cache; a
// loaded object is all or nothing (mergeConfig leaves `into` untouched when it fails).
#include <cstdint>
#include <string_view>

#include "config/config_loader.h"
#include "kubernetes/kube_objects.h"
#include "sluice/kube/watch_protocol.h"
#include "fuzz_check.h"

using namespace sluice::controller;
using namespace sluice::controller::kube;
using namespace sluice::kube;
using sluice::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)parseListPage(text);
  ObjectCache cache;
  cache.resourceVersion = "1";
  auto event = parseWatchEvent(text);
  if (!event) {
    check(cache.objects.empty() && cache.resourceVersion == "1");
    return 0;
  }
  cache.apply(*event);
  if (event->type == WatchEvent::Type::kError || event->type == WatchEvent::Type::kBookmark) return 0;
  // As the watcher does: the kind comes from the watched resource; try the kinds the loader knows.
  for (auto [apiVersion, kind] : {std::pair{"v1", "Pod"}, std::pair{"v1", "Service"},
                                  std::pair{"networking.istio.io/v1", "VirtualService"},
                                  std::pair{"security.istio.io/v1", "AuthorizationPolicy"}}) {
    nlohmann::json object = event->object;
    object["apiVersion"] = apiVersion;
    object["kind"] = kind;
    auto doc = loaderDocument(object);
    if (!doc || !*doc) continue;
    ConfigSet one, into;
    if (!loadConfigText("fuzz", (*doc)->dump(), one)) continue;
    size_t before = into.resources.size();
    if (!mergeConfig(into, std::move(one))) check(into.resources.size() == before);
  }
  return 0;
}
