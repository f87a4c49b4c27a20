// The revocation list: what the file may hold (hostile input, refused with the field named),
// which credentials a revocation covers, and how the running controller follows the file.
#include "discovery/node_revocations.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace sluice::controller {
namespace {

using std::chrono::seconds;
using Clock = std::chrono::system_clock;

struct ParseCase {
  const char* name;
  const char* json;
  const char* error;  // nullptr: accepted
};

TEST(NodeRevocations, ParsesOnlyTheDocumentedShape) {
  const ParseCase cases[] = {
      {"empty object", "{}", nullptr},
      {"empty list", R"({"revokedNodes": []})", nullptr},
      {"one node", R"({"revokedNodes": [{"node": "node-1.zone", "revokedAt": 1796000000}]})", nullptr},
      {"not JSON", "revokedNodes: [node1]", "f.json: not valid JSON"},
      {"a list at the top", "[]", "f.json: must be an object"},
      {"unknown top field", R"({"revoked": []})", "f.json: unknown field 'revoked'"},
      {"list not a list", R"({"revokedNodes": {}})", "f.json: revokedNodes must be a list"},
      {"entry not an object", R"({"revokedNodes": ["node1"]})", "f.json: revokedNodes[0]: must be an object"},
      {"unknown entry field", R"({"revokedNodes": [{"node": "a", "revokedAt": 1, "why": "x"}]})",
       "f.json: revokedNodes[0]: unknown field 'why'"},
      {"node missing", R"({"revokedNodes": [{"revokedAt": 1}]})", "f.json: revokedNodes[0].node: must be a node name"},
      {"node not a name", R"({"revokedNodes": [{"node": "Node_1", "revokedAt": 1}]})",
       "f.json: revokedNodes[0].node: must be a node name"},
      {"node with a slash", R"({"revokedNodes": [{"node": "a/b", "revokedAt": 1}]})",
       "f.json: revokedNodes[0].node: must be a node name"},
      {"time missing", R"({"revokedNodes": [{"node": "a"}]})", "f.json: revokedNodes[0].revokedAt: must be a non-negative integer"},
      {"time a string", R"({"revokedNodes": [{"node": "a", "revokedAt": "now"}]})",
       "f.json: revokedNodes[0].revokedAt: must be a non-negative integer"},
      {"time negative", R"({"revokedNodes": [{"node": "a", "revokedAt": -1}]})",
       "f.json: revokedNodes[0].revokedAt: must be a non-negative integer"},
      {"time fractional", R"({"revokedNodes": [{"node": "a", "revokedAt": 1.5}]})",
       "f.json: revokedNodes[0].revokedAt: must be a non-negative integer"},
      {"node twice", R"({"revokedNodes": [{"node": "a", "revokedAt": 1}, {"node": "a", "revokedAt": 2}]})",
       "f.json: revokedNodes[1].node: 'a' is listed twice"},
  };
  for (const auto& c : cases) {
    auto parsed = NodeRevocations::parse(c.json, "f.json");
    if (c.error == nullptr) {
      EXPECT_TRUE(parsed) << c.name << ": " << parsed.error().message();
      continue;
    }
    ASSERT_FALSE(parsed) << c.name;
    EXPECT_EQ(parsed.error().message().rfind(c.error, 0), 0u) << c.name << ": " << parsed.error().message();
  }
}

TEST(NodeRevocations, ARevocationCoversCredentialsIssuedAtOrBeforeIt) {
  Clock::time_point at{seconds(1'796'000'000)};
  auto list = NodeRevocations{}.with("node1", at);
  struct Case {
    const char* name;
    const char* node;
    Clock::time_point issuedAt;
    bool refused;
  } cases[] = {
      {"issued long before", "node1", at - seconds(86400), true},
      {"issued in the same second", "node1", at, true},
      {"issued a second later (re-admitted)", "node1", at + seconds(1), false},
      {"another node", "node2", at - seconds(86400), false},
  };
  for (const auto& c : cases) {
    auto checked = list.check(c.node, c.issuedAt);
    EXPECT_EQ(!checked, c.refused) << c.name;
    if (!checked) {
      EXPECT_NE(checked.error().message().find("node node1 was revoked at 1796000000"), std::string::npos) << c.name;
    }
  }
  // Round trip, and a second revocation of a node moves its time.
  auto again = NodeRevocations::parse(list.with("node1", at + seconds(10)).with("node2", at).serialize(), "x");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->revokedAt(), (std::map<std::string, int64_t>{{"node1", 1'796'000'010}, {"node2", 1'796'000'000}}));
}

TEST(RevocationFile, FollowsTheFileAndKeepsTheLastGoodListOnABadEdit) {
  std::string dir = ::testing::TempDir() + "/revocations_" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  RevocationFile file(revocationFileIn(dir));
  ASSERT_TRUE(file.load());  // missing: nothing revoked
  EXPECT_TRUE(file.current()->empty());
  auto write = [&](const std::string& text, int generation) {
    std::ofstream(file.path()) << text;
    // A distinct modification time per write, whatever the file system's granularity.
    std::filesystem::last_write_time(file.path(), std::filesystem::file_time_type::clock::now() + seconds(generation));
  };
  write(R"({"revokedNodes": [{"node": "node1", "revokedAt": 100}]})", 1);
  EXPECT_TRUE(file.refresh());
  EXPECT_EQ(file.current()->revokedAt().count("node1"), 1u);
  EXPECT_FALSE(file.refresh());  // unchanged
  write("{broken", 2);
  EXPECT_FALSE(file.refresh());
  EXPECT_EQ(file.current()->revokedAt().count("node1"), 1u) << "a bad edit must not lift a revocation";
  // A controller starting on a bad file refuses to start.
  RevocationFile fresh(file.path());
  auto loaded = fresh.load();
  ASSERT_FALSE(loaded);
  EXPECT_NE(loaded.error().message().find(file.path() + ": not valid JSON"), std::string::npos) << loaded.error().message();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sluice::controller
