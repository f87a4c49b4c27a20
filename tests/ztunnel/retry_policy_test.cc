// Retries as Istio's VirtualService defines them: retryOn parsing, which outcomes are
// retriable, which requests may go again, the backoff, and the retry budget: tables.
#include "l7/retry_policy.h"

#include <gtest/gtest.h>

namespace sluice::ztunnel::l7 {
namespace {

using namespace std::chrono_literals;
using K = AttemptResult::Kind;

TEST(RetryOn, ParsesIstiosConditionsAndStatusCodes) {
  auto on = parseRetryOn("5xx, connect-failure,refused-stream,409,unavailable,cancelled");
  ASSERT_TRUE(on) << on.error().message();
  EXPECT_TRUE(on->status5xx && on->connectFailure && on->refusedStream && on->retriableStatusCodes);
  EXPECT_FALSE(on->gatewayError || on->reset || on->retriable4xx);
  EXPECT_EQ(on->statusCodes, (std::set<int>{409}));
  EXPECT_EQ(on->grpcStatuses, (std::set<int>{1, 14}));
  EXPECT_TRUE(parseRetryOn(""));
  struct Bad {
    const char* text;
    const char* message;
  };
  for (auto [text, message] : {Bad{"5xx,retry-everything", "'retry-everything' is not a retry condition"},
                               Bad{"700", "'700' is not an HTTP status code"}, Bad{"5XX", "'5XX' is not a retry condition"}}) {
    auto bad = parseRetryOn(text);
    ASSERT_FALSE(bad) << text;
    EXPECT_NE(bad.error().message().find(message), std::string::npos) << bad.error().message();
  }
}

TEST(RetryPolicy, RetriableOutcomesByCondition) {
  RetryPolicy defaults = istioDefaultRetries();
  RetryOn fiveXx = *parseRetryOn("5xx");
  RetryOn gateway = *parseRetryOn("gateway-error");
  RetryOn reset = *parseRetryOn("reset");
  RetryOn grpc = *parseRetryOn("deadline-exceeded,internal,resource-exhausted");
  RetryOn fourXx = *parseRetryOn("retriable-4xx");
  struct Case {
    const char* what;
    const RetryOn* on;
    AttemptResult result;
    bool retriable;
  };
  const Case cases[] = {
      {"default: connect failure", &defaults.on, {K::kConnectFailure}, true},
      {"default: refused stream", &defaults.on, {K::kRefusedStream}, true},
      {"default: 503", &defaults.on, {K::kResponse, 503}, true},
      {"default: 500", &defaults.on, {K::kResponse, 500}, false},
      {"default: reset", &defaults.on, {K::kReset}, false},
      {"default: gRPC unavailable", &defaults.on, {K::kResponse, 200, 14}, true},
      {"default: gRPC internal", &defaults.on, {K::kResponse, 200, 13}, false},
      {"5xx: 500", &fiveXx, {K::kResponse, 500}, true},
      {"5xx: reset", &fiveXx, {K::kReset}, true},
      {"5xx: 404", &fiveXx, {K::kResponse, 404}, false},
      {"gateway-error: 502", &gateway, {K::kResponse, 502}, true},
      {"gateway-error: 500", &gateway, {K::kResponse, 500}, false},
      {"reset: reset", &reset, {K::kReset}, true},
      {"reset: 503", &reset, {K::kResponse, 503}, false},
      {"gRPC codes: deadline exceeded", &grpc, {K::kResponse, 200, 4}, true},
      {"gRPC codes: OK", &grpc, {K::kResponse, 200, 0}, false},
      {"retriable-4xx: 409", &fourXx, {K::kResponse, 409}, true},
      {"retriable-4xx: 429", &fourXx, {K::kResponse, 429}, false},
  };
  for (const auto& c : cases) EXPECT_EQ(retriableOutcome(*c.on, c.result), c.retriable) << c.what;
}

TEST(RetryPolicy, WhichRequestsMayGoAgain) {
  RetryPolicy p{.attempts = 2, .on = *parseRetryOn("5xx,connect-failure")};
  struct Case {
    const char* what;
    AttemptResult result;
    int retriesSoFar;
    const char* method;
    bool replayable, retry;
  };
  const Case cases[] = {
      {"GET after a 503", {K::kResponse, 503}, 0, "GET", true, true},
      {"second retry", {K::kResponse, 503}, 1, "GET", true, true},
      {"attempts spent", {K::kResponse, 503}, 2, "GET", true, false},
      {"POST after a 503: it reached the app", {K::kResponse, 503}, 0, "POST", true, false},
      {"POST after a connect failure: it never did", {K::kConnectFailure}, 0, "POST", true, true},
      {"PUT is idempotent", {K::kResponse, 500}, 0, "PUT", true, true},
      {"a body already streamed", {K::kResponse, 503}, 0, "GET", false, false},
      {"not a retriable outcome", {K::kResponse, 404}, 0, "GET", true, false},
  };
  for (const auto& c : cases) EXPECT_EQ(shouldRetry(p, c.result, c.retriesSoFar, c.method, c.replayable), c.retry) << c.what;
  EXPECT_FALSE(shouldRetry({.attempts = 0, .on = p.on}, {K::kResponse, 503}, 0, "GET", true)) << "attempts: 0 turns retries off";
}

TEST(RetryPolicy, BackoffIsJitteredExponentialFrom25msUpTo250ms) {
  struct Case {
    int retriesSoFar;
    int64_t ceiling;
  };
  for (auto [n, ceiling] : {Case{0, 25}, Case{1, 75}, Case{2, 175}, Case{3, 250}, Case{20, 250}}) {
    int64_t highest = 0;
    for (uint64_t r = 0; r < 2000; ++r) {
      auto b = retryBackoff(n, r * 0x9e3779b97f4a7c15ULL).count();
      EXPECT_GE(b, 0);
      highest = std::max(highest, b);
    }
    EXPECT_LE(highest, ceiling) << n;
    EXPECT_GE(highest, ceiling * 9 / 10) << n << ": the range is used";
  }
}

TEST(RetryBudget, TwentyPercentOfTheWindowsRequestsPlusTenPerSecond) {
  std::chrono::steady_clock::time_point t{std::chrono::hours(1)};
  RetryBudget budget;
  const RetryBudgetPolicy linkerd;  // no DestinationRule retryBudget
  // No requests yet: the floor alone, 10 per second of the 10 s window = 100.
  int allowed = 0;
  for (int i = 0; i < 150; ++i) allowed += budget.tryRetry(linkerd, t) ? 1 : 0;
  EXPECT_EQ(allowed, 100);
  EXPECT_EQ(budget.denied(), 50u);
  // 1,000 requests in the window: 200 more.
  for (int i = 0; i < 1000; ++i) budget.request(t + 1s);
  allowed = 0;
  for (int i = 0; i < 300; ++i) allowed += budget.tryRetry(linkerd, t + 1s) ? 1 : 0;
  EXPECT_EQ(allowed, 200);
  // Ten seconds later the window has moved past all of it: the floor again.
  allowed = 0;
  for (int i = 0; i < 150; ++i) allowed += budget.tryRetry(linkerd, t + 12s) ? 1 : 0;
  EXPECT_EQ(allowed, 100);
}

TEST(RetryBudget, IstiosFieldsSetTheShareTheIntervalAndAFloorOfRetriesInFlight) {
  std::chrono::steady_clock::time_point t{std::chrono::hours(2)};
  struct Case {
    const char* what;
    RetryBudgetPolicy policy;
    uint32_t inFlight;
    int allowed;  // of 500 retries tried after 1,000 requests one second earlier
  };
  const Case cases[] = {
      {"percent 5, no floor of its own beyond minRetryConcurrency 0", {.ratio = 0.05, .minConcurrency = 0}, 0, 50},
      {"percent 0, minRetryConcurrency 0: no retry at all", {.ratio = 0, .minConcurrency = 0}, 0, 0},
      {"percent 0, 3 may be in flight, none is", {.ratio = 0, .minConcurrency = 3}, 0, 500},
      {"percent 0, 3 may be in flight, 3 are", {.ratio = 0, .minConcurrency = 3}, 3, 0},
      {"percent 10 over a 1 s interval: the requests are outside it", {.ratio = 0.1, .windowSeconds = 1, .minConcurrency = 0}, 0, 0},
      {"percent 10 over 30 s", {.ratio = 0.1, .windowSeconds = 30, .minConcurrency = 0}, 0, 100},
  };
  for (const auto& c : cases) {
    RetryBudget budget;
    for (int i = 0; i < 1000; ++i) budget.request(t);
    int allowed = 0;
    for (int i = 0; i < 500; ++i) allowed += budget.tryRetry(c.policy, t + 1s, c.inFlight) ? 1 : 0;
    EXPECT_EQ(allowed, c.allowed) << c.what;
  }
}

TEST(RetryBudgets, CountRetriesAndDenialsPerServiceAndWhatIsInFlight) {
  RetryBudgets budgets;
  std::chrono::steady_clock::time_point t{std::chrono::hours(1)};
  std::vector<RetryInFlight> held;
  for (int i = 0; i < 120; ++i) {
    if (auto r = budgets.tryRetry("shop/web", {}, t)) held.push_back(std::move(*r));
  }
  auto api = budgets.tryRetry("shop/api", {}, t);
  auto counts = budgets.counts();
  EXPECT_EQ(counts["shop/web"].retries, 100u);
  EXPECT_EQ(counts["shop/web"].denied, 20u);
  EXPECT_EQ(counts["shop/web"].inFlight, 100u);
  EXPECT_EQ(counts["shop/api"].retries, 1u);
  held.resize(40);  // 60 retries ended
  EXPECT_EQ(budgets.counts()["shop/web"].inFlight, 40u);
  // Istio's minRetryConcurrency: with a share of 0, only the floor of 2 in flight.
  RetryBudgetPolicy floorOnly{.ratio = 0, .minConcurrency = 2};
  auto first = budgets.tryRetry("shop/db", floorOnly, t), second = budgets.tryRetry("shop/db", floorOnly, t);
  EXPECT_TRUE(first && second);
  EXPECT_FALSE(budgets.tryRetry("shop/db", floorOnly, t)) << "a third in flight";
  first.reset();
  EXPECT_TRUE(budgets.tryRetry("shop/db", floorOnly, t)) << "one ended: room again";
}

}  // namespace
}  // namespace sluice::ztunnel::l7
