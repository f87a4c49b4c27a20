// The list/watch client against a fake API server (tests/interop/fake_kube_api.py) that speaks
// the documented protocol over HTTPS: initial list, incremental events, bookmarks, 410 relist,
// reconnect with back-off, a malformed event refused with no state change, authentication and
// certificate checks. No Kubernetes API server can be installed on these machines.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <chrono>

#include "support/fake_kube_api.h"
#include "sluice/kube/resource_watcher.h"

namespace sluice::kube {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

json pod(const std::string& name, const std::string& rv, const std::string& image = "app:1") {
  return {{"metadata", {{"name", name}, {"namespace", "shop"}, {"resourceVersion", rv}}},
          {"spec", {{"containers", {{{"name", "app"}, {"image", image}}}}}}};
}

std::string event(const std::string& type, const json& object) { return json{{"type", type}, {"object", object}}.dump(); }

class KubeWatchTest : public ::testing::Test {
 protected:
  void TearDown() override {
    watcher_.reset();
    api_.reset();
  }

  // Starts the fake server with `scenario` and a watcher of its pods with fast back-off.
  void start(const json& scenario, const std::string& caFile = "", bool withToken = true) {
    client_ = std::make_unique<KubeApiClient>(api_->start(scenario, caFile, withToken));
    WatcherOptions options;
    options.initialBackoff = 100ms;
    options.maxBackoff = 2s;
    options.watchTimeoutSeconds = 30;
    watcher_ = std::make_unique<ResourceWatcher>(*client_, ResourceKind{"/api/v1/pods", "v1", "Pod", "", false}, options);
    watcher_->start();
  }
  // A fresh server and watcher within one test.
  void restart() {
    TearDown();
    api_ = std::make_unique<testing::FakeKubeApi>();
  }

  template <typename Pred>
  bool waitFor(Pred done) {
    return testing::waitUntil(done);
  }
  std::vector<json> requests() { return api_->requests(); }
  std::vector<json> watchRequests() {
    std::vector<json> out;
    for (auto& r : requests()) {
      if (r["query"].value("watch", "") == "1") out.push_back(r);
    }
    return out;
  }
  std::vector<std::string> keys() {
    std::vector<std::string> out;
    for (const auto& [key, _] : *watcher_->snapshot()) out.push_back(key);
    return out;
  }

  std::unique_ptr<testing::FakeKubeApi> api_ = std::make_unique<testing::FakeKubeApi>();
  std::unique_ptr<KubeApiClient> client_;
  std::unique_ptr<ResourceWatcher> watcher_;
};

TEST_F(KubeWatchTest, InitialListThenIncrementalEvents) {
  start({{"path", "/api/v1/pods"},
         {"lists", {{{"resourceVersion", "10"}, {"items", {pod("a", "8"), pod("b", "9")}}}}},
         {"watches",
          {{{"lines", {event("ADDED", pod("c", "11")), event("MODIFIED", pod("a", "12", "app:2")), event("DELETED", pod("b", "13"))}},
            {"end", "hold"}}}}});
  ASSERT_TRUE(waitFor([&] { return keys() == std::vector<std::string>{"shop/a", "shop/c"}; })) << keys().size();
  auto snapshot = watcher_->snapshot();
  EXPECT_EQ(snapshot->at("shop/a")["spec"]["containers"][0]["image"], "app:2");
  EXPECT_EQ(snapshot->at("shop/a")["kind"], "Pod") << "objects carry their kind, as the loader needs";
  auto watches = watchRequests();
  ASSERT_EQ(watches.size(), 1u);
  EXPECT_EQ(watches[0]["query"]["resourceVersion"], "10") << "the watch starts where the list ended";
  EXPECT_EQ(watches[0]["query"]["allowWatchBookmarks"], "true");
  auto stats = watcher_->stats();
  EXPECT_EQ(stats.lists, 1u);
  EXPECT_EQ(stats.events, 3u);
  EXPECT_TRUE(stats.synced);
}

TEST_F(KubeWatchTest, ListPagesAreFollowedAndMerged) {
  start({{"path", "/api/v1/pods"},
         {"lists",
          {{{"resourceVersion", "5"}, {"items", {pod("a", "1")}}, {"continue", "page2"}},
           {{"resourceVersion", "5"}, {"items", {pod("b", "2")}}}}},
         {"watches", {{{"lines", json::array()}, {"end", "hold"}}}}});
  ASSERT_TRUE(waitFor([&] { return keys().size() == 2; }));
  auto all = requests();
  ASSERT_GE(all.size(), 2u);
  EXPECT_EQ(all[1]["query"]["continue"], "page2");
}

TEST_F(KubeWatchTest, BookmarksMoveTheResumeVersionWithoutAList) {
  start({{"path", "/api/v1/pods"},
         {"lists", {{{"resourceVersion", "10"}, {"items", {pod("a", "8")}}}}},
         {"watches",
          {{{"lines", {R"({"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"20"}}})"}}, {"end", "close"}},
           {{"lines", json::array()}, {"end", "hold"}}}}});
  ASSERT_TRUE(waitFor([&] { return watchRequests().size() == 2; }));
  EXPECT_EQ(watchRequests()[1]["query"]["resourceVersion"], "20");
  EXPECT_EQ(watcher_->stats().lists, 1u) << "a watch that ends normally is resumed, not relisted";
  EXPECT_EQ(keys(), std::vector<std::string>{"shop/a"});
}

TEST_F(KubeWatchTest, GoneRelistsAndReplacesTheCache) {
  for (bool asEvent : {true, false}) {
    SCOPED_TRACE(asEvent ? "410 as an ERROR event" : "410 as the HTTP status");
    json gone = asEvent ? json{{"lines", {R"({"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old"}})"}},
                               {"end", "close"}}
                        : json{{"status", 410}};
    start({{"path", "/api/v1/pods"},
           {"lists", {{{"resourceVersion", "10"}, {"items", {pod("a", "8")}}}, {{"resourceVersion", "30"}, {"items", {pod("x", "29")}}}}},
           {"watches", {gone, {{"lines", json::array()}, {"end", "hold"}}}}});
    ASSERT_TRUE(waitFor([&] { return keys() == std::vector<std::string>{"shop/x"}; }));
    auto stats = watcher_->stats();
    EXPECT_EQ(stats.lists, 2u);
    EXPECT_EQ(stats.relistsGone, 1u);
    ASSERT_TRUE(waitFor([&] { return watchRequests().size() == 2; }));
    EXPECT_EQ(watchRequests()[1]["query"]["resourceVersion"], "30");
    restart();
  }
}

TEST_F(KubeWatchTest, FailedWatchesAreRetriedWithGrowingBackoff) {
  start({{"path", "/api/v1/pods"},
         {"lists", {{{"resourceVersion", "10"}, {"items", {pod("a", "8")}}}}},
         {"watches", {{{"status", 500}}, {{"status", 500}}, {{"status", 500}}, {{"status", 500}}, {{"lines", json::array()}, {"end", "hold"}}}}});
  ASSERT_TRUE(waitFor([&] { return watchRequests().size() == 5; }));
  auto watches = watchRequests();
  std::vector<double> gaps;
  for (size_t i = 1; i < watches.size(); ++i) gaps.push_back(watches[i]["time"].get<double>() - watches[i - 1]["time"].get<double>());
  // Equal jitter: attempt n waits between half and all of 100 ms * 2^n.
  EXPECT_GE(gaps[0], 0.045);
  EXPECT_GE(gaps[3], 0.395);
  EXPECT_GT(gaps[3], gaps[0]);
  auto stats = watcher_->stats();
  EXPECT_EQ(stats.failures, 4u);
  EXPECT_NE(stats.lastError.find("HTTP 500"), std::string::npos) << stats.lastError;
  EXPECT_EQ(stats.lists, 1u) << "a failed watch resumes from the last version, it does not relist";
  EXPECT_EQ(keys(), std::vector<std::string>{"shop/a"});
}

TEST_F(KubeWatchTest, MalformedEventIsRefusedAndChangesNothing) {
  start({{"path", "/api/v1/pods"},
         {"lists", {{{"resourceVersion", "10"}, {"items", {pod("a", "8")}}}}},
         {"watches",
          {{{"lines", {event("ADDED", pod("c", "11")), R"({"type":"ADDED","object":{"metadata":{"namespace":"shop","resourceVersion":"12"}}})",
                       event("ADDED", pod("d", "13"))}},
            {"end", "close"}},
           {{"lines", json::array()}, {"end", "hold"}}}}});
  ASSERT_TRUE(waitFor([&] { return watchRequests().size() == 2; }));
  auto stats = watcher_->stats();
  EXPECT_EQ(stats.malformed, 1u);
  EXPECT_NE(stats.lastError.find("no metadata.name"), std::string::npos) << stats.lastError;
  EXPECT_EQ(keys(), (std::vector<std::string>{"shop/a", "shop/c"})) << "the event after the bad one was not taken either";
  EXPECT_EQ(watchRequests()[1]["query"]["resourceVersion"], "11") << "resumed from the last good event";
}

TEST_F(KubeWatchTest, UnknownCertificateAuthorityAndMissingTokenAreRefused) {
  // A CA that did not sign the server's certificate: the TLS handshake fails, nothing is listed.
  api_->makeCa("other");
  start({{"path", "/api/v1/pods"}, {"lists", {{{"resourceVersion", "1"}, {"items", json::array()}}}}, {"watches", json::array()}},
        api_->path("other.crt"));
  ASSERT_TRUE(waitFor([&] { return watcher_->stats().failures >= 1; }));
  EXPECT_FALSE(watcher_->stats().synced);
  EXPECT_TRUE(requests().empty()) << "no request reached the server without a verified certificate";
  restart();
  start({{"path", "/api/v1/pods"}, {"lists", {{{"resourceVersion", "1"}, {"items", json::array()}}}}, {"watches", json::array()}},
        "", false);
  ASSERT_TRUE(waitFor([&] { return watcher_->stats().failures >= 1; }));
  EXPECT_NE(watcher_->stats().lastError.find("HTTP 401"), std::string::npos) << watcher_->stats().lastError;
  EXPECT_FALSE(watcher_->stats().synced);
}

}  // namespace
}  // namespace sluice::kube
