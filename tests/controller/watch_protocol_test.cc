// The Kubernetes list/watch protocol's pure parts: pages, events, the cache, queries, back-off.
#include "sluice/kube/watch_protocol.h"

#include <gtest/gtest.h>

#include "sluice/kube/resource_watcher.h"

namespace sluice::kube {
namespace {

struct EventCase {
  const char* name;
  const char* line;
  const char* error;  // nullptr: accepted
};

TEST(WatchProtocol, EventsAreValidatedBeforeUse) {
  const EventCase cases[] = {
      {"added", R"({"type":"ADDED","object":{"metadata":{"name":"a","namespace":"n","resourceVersion":"5"}}})", nullptr},
      {"bookmark", R"({"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"9"}}})", nullptr},
      {"gone", R"({"type":"ERROR","object":{"kind":"Status","code":410,"message":"too old"}})", nullptr},
      {"not json", "{bad", "not a JSON object"},
      {"array", "[]", "not a JSON object"},
      {"no type", R"({"object":{}})", "no \"type\""},
      {"unknown type", R"({"type":"RENAMED","object":{}})", "unknown type \"RENAMED\""},
      {"no object", R"({"type":"ADDED"})", "no \"object\""},
      {"no name", R"({"type":"ADDED","object":{"metadata":{"resourceVersion":"5"}}})", "no metadata.name"},
      {"empty name", R"({"type":"ADDED","object":{"metadata":{"name":"","resourceVersion":"5"}}})", "no metadata.name"},
      {"namespace not a string", R"({"type":"MODIFIED","object":{"metadata":{"name":"a","namespace":3,"resourceVersion":"5"}}})",
       "metadata.namespace is not a string"},
      {"no version", R"({"type":"DELETED","object":{"metadata":{"name":"a"}}})", "no metadata.resourceVersion"},
      {"bookmark without version", R"({"type":"BOOKMARK","object":{"metadata":{}}})", "BOOKMARK has no"},
      {"error without code", R"({"type":"ERROR","object":{"message":"x"}})", "no Status code"},
  };
  for (const auto& c : cases) {
    auto event = parseWatchEvent(c.line);
    if (c.error == nullptr) {
      EXPECT_TRUE(event) << c.name << ": " << event.error().message();
    } else {
      ASSERT_FALSE(event) << c.name;
      EXPECT_NE(event.error().message().find(c.error), std::string::npos) << c.name << ": " << event.error().message();
    }
  }
  auto gone = parseWatchEvent(R"({"type":"ERROR","object":{"kind":"Status","code":410,"message":"too old"}})");
  EXPECT_EQ(gone->errorCode, 410);
  EXPECT_EQ(gone->errorMessage, "too old");
}

TEST(WatchProtocol, ListPagesAreValidated) {
  auto page = parseListPage(
      R"({"metadata":{"resourceVersion":"7","continue":"tok"},"items":[{"metadata":{"name":"a","namespace":"n"}}]})");
  ASSERT_TRUE(page) << page.error().message();
  EXPECT_EQ(page->resourceVersion, "7");
  EXPECT_EQ(page->continueToken, "tok");
  ASSERT_EQ(page->items.size(), 1u);
  EXPECT_EQ(objectKey(page->items[0]), "n/a");
  auto empty = parseListPage(R"({"metadata":{"resourceVersion":"8"},"items":null})");
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->items.empty());
  for (const char* bad : {"[]", R"({"items":[]})", R"({"metadata":{"resourceVersion":"1"}})",
                          R"({"metadata":{"resourceVersion":"1"},"items":[{"metadata":{}}]})"}) {
    EXPECT_FALSE(parseListPage(bad)) << bad;
  }
}

TEST(WatchProtocol, CacheAppliesEventsAndBookmarksOnlyMoveTheVersion) {
  ObjectCache cache;
  auto apply = [&](const char* line) { return cache.apply(*parseWatchEvent(line)); };
  EXPECT_TRUE(apply(R"({"type":"ADDED","object":{"metadata":{"name":"a","namespace":"n","resourceVersion":"2"}}})"));
  EXPECT_FALSE(apply(R"({"type":"MODIFIED","object":{"metadata":{"name":"a","namespace":"n","resourceVersion":"2"}}})"))
      << "the same object again changes nothing";
  EXPECT_TRUE(apply(R"({"type":"MODIFIED","object":{"metadata":{"name":"a","namespace":"n","resourceVersion":"3"},"spec":{}}})"));
  EXPECT_FALSE(apply(R"({"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"9"}}})"));
  EXPECT_EQ(cache.resourceVersion, "9");
  EXPECT_EQ(cache.objects.size(), 1u);
  EXPECT_TRUE(apply(R"({"type":"DELETED","object":{"metadata":{"name":"a","namespace":"n","resourceVersion":"10"}}})"));
  EXPECT_TRUE(cache.objects.empty());
  EXPECT_EQ(cache.resourceVersion, "10");
}

TEST(WatchProtocol, QueriesEncodeTheirValues) {
  EXPECT_EQ(listQuery(500, "", ""), "?limit=500");
  EXPECT_EQ(listQuery(10, "a b&c", "spec.nodeName=n1"), "?limit=10&continue=a%20b%26c&fieldSelector=spec.nodeName%3Dn1");
  EXPECT_EQ(watchQuery("42", 300, ""), "?watch=1&allowWatchBookmarks=true&timeoutSeconds=300&resourceVersion=42");
}

struct BackoffCase {
  int attempt;
  double random;
  int64_t ms;
};

TEST(WatchProtocol, BackoffDoublesWithEqualJitterUpToTheMaximum) {
  WatcherOptions o;
  o.initialBackoff = std::chrono::milliseconds(100);
  o.maxBackoff = std::chrono::milliseconds(1000);
  const BackoffCase cases[] = {{0, 0.0, 50},  {0, 0.999, 99},  {1, 0.0, 100}, {2, 1.0, 400},
                               {3, 0.5, 600}, {4, 0.0, 500},   {40, 1.0, 1000}, {0, 7.0, 100}};
  for (const auto& c : cases) {
    EXPECT_EQ(backoffDelay(o, c.attempt, c.random).count(), c.ms) << c.attempt << " " << c.random;
  }
}

TEST(WatchProtocol, TheApiServerAProgramWasToldToUse) {
  const std::map<std::string, std::string> inPod = {{"KUBERNETES_SERVICE_HOST", "10.96.0.1"}, {"KUBERNETES_SERVICE_PORT", "443"}};
  auto none = chosenApiServer(false, {}, inPod);
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none) << "no flag: no API server";
  auto cluster = chosenApiServer(true, {}, inPod);
  ASSERT_TRUE(cluster && *cluster);
  EXPECT_EQ((*cluster)->url, "https://10.96.0.1:443");
  EXPECT_EQ((*cluster)->tokenFile, "/var/run/secrets/kubernetes.io/serviceaccount/token");
  auto v6 = chosenApiServer(true, {}, {{"KUBERNETES_SERVICE_HOST", "fd00::1"}, {"KUBERNETES_SERVICE_PORT", "443"}});
  ASSERT_TRUE(v6 && *v6);
  EXPECT_EQ((*v6)->url, "https://[fd00::1]:443");
  auto outside = chosenApiServer(true, {}, {});
  ASSERT_FALSE(outside);
  EXPECT_NE(outside.error().message().find("--kubernetes: not in a Kubernetes pod"), std::string::npos);
  auto given = chosenApiServer(false, {.url = "https://api:6443", .caFile = "/ca.crt", .tokenFile = ""}, {});
  ASSERT_TRUE(given && *given);
  EXPECT_EQ((*given)->url, "https://api:6443");
  auto noCa = chosenApiServer(false, {.url = "https://api:6443", .caFile = "", .tokenFile = ""}, {});
  ASSERT_FALSE(noCa);
  EXPECT_NE(noCa.error().message().find("--kube-api needs --kube-ca"), std::string::npos);
}

}  // namespace
}  // namespace sluice::kube
