#include "sluice/kube/watch_protocol.h"

#include <fmt/format.h>

namespace sluice::kube {

using nlohmann::json;

namespace {

// metadata.name (required), metadata.namespace and metadata.resourceVersion (optional) must be
// strings; anything else means the object is not one the API server would send.
Status checkObject(const json& object, std::string_view what) {
  if (!object.is_object()) return fail(fmt::format("{} is not a JSON object", what));
  auto meta = object.find("metadata");
  if (meta == object.end() || !meta->is_object()) return fail(fmt::format("{} has no metadata", what));
  auto name = meta->find("name");
  if (name == meta->end() || !name->is_string() || name->get_ref<const std::string&>().empty()) {
    return fail(fmt::format("{} has no metadata.name", what));
  }
  for (const char* field : {"namespace", "resourceVersion"}) {
    auto f = meta->find(field);
    if (f != meta->end() && !f->is_string()) return fail(fmt::format("{}: metadata.{} is not a string", what, field));
  }
  return {};
}


std::string percentEncode(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

}  // namespace

std::string nestedString(const json& object, const char* a, const char* b) {
  auto x = object.find(a);
  if (x == object.end() || !x->is_object()) return {};
  auto y = x->find(b);
  return y != x->end() && y->is_string() ? y->get<std::string>() : std::string();
}

Result<ListPage> parseListPage(std::string_view body) {
  if (body.size() > kMaxMessageBytes) return fail("list response larger than 8 MiB");
  json doc = json::parse(body, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return fail("list response is not a JSON object");
  auto items = doc.find("items");
  // An empty list may come as "items": null.
  if (items == doc.end() || !(items->is_array() || items->is_null())) return fail("list response has no \"items\" list");
  ListPage page;
  page.resourceVersion = nestedString(doc, "metadata", "resourceVersion");
  if (page.resourceVersion.empty()) return fail("list response has no metadata.resourceVersion");
  page.continueToken = nestedString(doc, "metadata", "continue");
  if (items->is_array()) {
    for (size_t i = 0; i < items->size(); ++i) {
      SLUICE_TRY(checkObject((*items)[i], fmt::format("list item {}", i)), "list response");
      page.items.push_back(std::move((*items)[i]));
    }
  }
  return page;
}

Result<WatchEvent> parseWatchEvent(std::string_view line) {
  if (line.size() > kMaxMessageBytes) return fail("watch event larger than 8 MiB");
  json doc = json::parse(line, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return fail("watch event is not a JSON object");
  auto type = doc.find("type");
  auto object = doc.find("object");
  if (type == doc.end() || !type->is_string()) return fail("watch event has no \"type\"");
  if (object == doc.end() || !object->is_object()) return fail("watch event has no \"object\"");
  static const std::map<std::string, WatchEvent::Type, std::less<>> kTypes = {
      {"ADDED", WatchEvent::Type::kAdded},       {"MODIFIED", WatchEvent::Type::kModified},
      {"DELETED", WatchEvent::Type::kDeleted},   {"BOOKMARK", WatchEvent::Type::kBookmark},
      {"ERROR", WatchEvent::Type::kError}};
  auto known = kTypes.find(type->get_ref<const std::string&>());
  if (known == kTypes.end()) return fail(fmt::format("watch event of unknown type {}", type->dump()));
  WatchEvent event;
  event.type = known->second;
  if (event.type == WatchEvent::Type::kError) {
    auto code = object->find("code");
    if (code == object->end() || !code->is_number_integer()) return fail("watch ERROR event has no Status code");
    event.errorCode = code->get<int>();
    auto message = object->find("message");
    if (message != object->end() && message->is_string()) event.errorMessage = message->get<std::string>();
    event.object = std::move(*object);
    return event;
  }
  event.resourceVersion = nestedString(*object, "metadata", "resourceVersion");
  if (event.type == WatchEvent::Type::kBookmark) {
    if (event.resourceVersion.empty()) return fail("watch BOOKMARK has no metadata.resourceVersion");
    return event;
  }
  SLUICE_TRY(checkObject(*object, fmt::format("watch {} object", type->get<std::string>())), "watch event");
  if (event.resourceVersion.empty()) return fail(fmt::format("watch {} object has no metadata.resourceVersion", type->get<std::string>()));
  event.object = std::move(*object);
  return event;
}

std::string objectKey(const json& object) {
  std::string ns = nestedString(object, "metadata", "namespace");
  std::string name = nestedString(object, "metadata", "name");
  return ns.empty() ? name : ns + "/" + name;
}

bool ObjectCache::apply(const WatchEvent& event) {
  switch (event.type) {
    case WatchEvent::Type::kError:
      return false;
    case WatchEvent::Type::kBookmark:
      resourceVersion = event.resourceVersion;
      return false;
    case WatchEvent::Type::kDeleted:
      resourceVersion = event.resourceVersion;
      return objects.erase(objectKey(event.object)) > 0;
    case WatchEvent::Type::kAdded:
    case WatchEvent::Type::kModified: {
      resourceVersion = event.resourceVersion;
      auto& slot = objects[objectKey(event.object)];
      if (slot == event.object) return false;
      slot = event.object;
      return true;
    }
  }
  return false;
}

std::string listQuery(size_t limit, std::string_view continueToken, std::string_view fieldSelector) {
  std::string q = fmt::format("?limit={}", limit);
  if (!continueToken.empty()) q += "&continue=" + percentEncode(continueToken);
  if (!fieldSelector.empty()) q += "&fieldSelector=" + percentEncode(fieldSelector);
  return q;
}

std::string watchQuery(std::string_view resourceVersion, int timeoutSeconds, std::string_view fieldSelector) {
  std::string q = fmt::format("?watch=1&allowWatchBookmarks=true&timeoutSeconds={}&resourceVersion={}", timeoutSeconds,
                              percentEncode(resourceVersion));
  if (!fieldSelector.empty()) q += "&fieldSelector=" + percentEncode(fieldSelector);
  return q;
}

}  // namespace sluice::kube
