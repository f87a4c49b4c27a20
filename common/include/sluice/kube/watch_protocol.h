// The Kubernetes list/watch protocol, as pure functions over the API server's bytes (the
// client that moves them is kube_api_client.h, the loop that drives them resource_watcher.h).
//
//   list   GET <path>?limit=N[&continue=T]   -> {"metadata":{"resourceVersion","continue"},"items":[...]}
//   watch  GET <path>?watch=1&resourceVersion=RV&allowWatchBookmarks=true&timeoutSeconds=S
//          -> one JSON event per line: {"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":{...}}
//   An ERROR event carries a Status; code 410 (Gone: the resourceVersion is too old) means list
//   again. A BOOKMARK only moves the resourceVersion forward.
//
// Everything from the API server is treated as hostile: a malformed page or event is an error
// naming what is wrong, and applying it changes nothing.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/common/error.h"

namespace sluice::kube {

// The longest watch line or list page accepted (the API server's own object limit is ~1.5 MiB).
inline constexpr size_t kMaxMessageBytes = 8 << 20;

struct ListPage {
  std::vector<nlohmann::json> items;
  std::string resourceVersion;
  std::string continueToken;  // empty: the last page
};

Result<ListPage> parseListPage(std::string_view body);

struct WatchEvent {
  enum class Type { kAdded, kModified, kDeleted, kBookmark, kError } type = Type::kAdded;
  nlohmann::json object;        // kAdded/kModified/kDeleted: the object; kError: the Status
  std::string resourceVersion;  // the object's (or the bookmark's) metadata.resourceVersion
  int errorCode = 0;            // kError: the Status code (410: list again)
  std::string errorMessage;     // kError
};

Result<WatchEvent> parseWatchEvent(std::string_view line);

// object[a][b] when it is a string, else "" (e.g. nestedString(pod, "metadata", "name")).
std::string nestedString(const nlohmann::json& object, const char* a, const char* b);

// "namespace/name" (or "name" for cluster-scoped objects) of a validated object.
std::string objectKey(const nlohmann::json& object);

// The objects of one resource as last seen, by objectKey, and the resourceVersion to watch from.
struct ObjectCache {
  std::map<std::string, nlohmann::json> objects;
  std::string resourceVersion;

  // Applies one event; returns whether the objects changed (a bookmark only moves the version).
  // kError events are not applied (the caller decides: relist or re-watch).
  bool apply(const WatchEvent& event);
};

// Query string of a list or watch request (values percent-encoded).
std::string listQuery(size_t limit, std::string_view continueToken, std::string_view fieldSelector);
std::string watchQuery(std::string_view resourceVersion, int timeoutSeconds, std::string_view fieldSelector);

}  // namespace sluice::kube
