// sluice-bench's summary and its parsing of perf's counts: tables of inputs and expectations.
#include "bench_report.h"
#include "process_usage.h"

#include <gtest/gtest.h>
#include <unistd.h>

namespace sluice::bench {
namespace {

TEST(PerfSyscalls, ReadsTheCountOfTheTracepointLine) {
  struct Case {
    const char* text;
    std::optional<uint64_t> count;
  };
  const Case cases[] = {
      {"# started on Wed Dec  2\n\n123456,,raw_syscalls:sys_enter,2000123,100.00,,\n", 123456},
      {"0,,raw_syscalls:sys_enter,1,100.00,,\n", 0},
      {"<not counted>,,raw_syscalls:sys_enter,0,0.00,,\n", std::nullopt},
      {"<not supported>,,raw_syscalls:sys_enter,0,0.00,,\n", std::nullopt},
      {",,raw_syscalls:sys_enter,0,0.00,,\n", std::nullopt},
      {"42,,context-switches,1,100.00,,\n", std::nullopt},  // another event only
      {"", std::nullopt},
  };
  for (const auto& c : cases) EXPECT_EQ(parsePerfSyscalls(c.text), c.count) << c.text;
}

TEST(ProcessUsage, CountsThisProcessesCpuAndContextSwitches) {
  ProcessUsage before = readUsage(::getpid());
  volatile uint64_t spin = 0;
  for (int i = 0; i < 50'000'000; ++i) spin = spin + i;
  ::usleep(1000);  // a voluntary switch at least
  ProcessUsage after = readUsage(::getpid());
  EXPECT_GT(after.cpuSeconds, before.cpuSeconds);
  EXPECT_GT(after.contextSwitches, before.contextSwitches);
  EXPECT_GT(rssKiB(::getpid()), 0u);
  EXPECT_EQ(readUsage(pid_t{0x7ffffff0}).contextSwitches, 0u);  // no such process: nothing
}

TEST(BenchSummary, RoundTripsThroughJsonAndRefusesOtherDocuments) {
  std::vector<Row> rows = {
      {.metric = "throughput, 1 stream", .unit = "Gbit/s", .path = "two tunnels mTLS", .value = 5.4, .ratioToDirect = 0.31,
       .ratioToPeer = 0.71, .work = "MB", .proxyCores = 1.26, .cpuMsPerWork = 1.8, .contextSwitchesPerWork = 2.5},
      {.metric = "throughput, 1 stream", .unit = "Gbit/s", .path = "direct", .value = 17.5, .ratioToDirect = 1.0},
  };
  auto back = rowsFromJson(toJson(rows, 3, 5));
  ASSERT_TRUE(back);
  ASSERT_EQ(back->size(), 2u);
  EXPECT_EQ((*back)[0].path, "two tunnels mTLS");
  EXPECT_DOUBLE_EQ((*back)[0].value, 5.4);
  EXPECT_EQ((*back)[0].ratioToPeer, 0.71);
  EXPECT_EQ((*back)[0].cpuMsPerWork, 1.8);
  EXPECT_FALSE((*back)[0].syscallsPerWork);  // unknown stays unknown, not 0
  EXPECT_FALSE((*back)[1].ratioToPeer);

  const char* refused[] = {R"({"rows": []})", R"({"schema": "other/1", "rows": []})", R"({"schema": "sluice-bench/1"})",
                           R"({"schema": "sluice-bench/1", "rows": [{"metric": "x"}]})", R"([1, 2])"};
  for (const char* text : refused) EXPECT_FALSE(rowsFromJson(nlohmann::json::parse(text))) << text;
}

TEST(BenchSummary, CostTableSkipsDirectAndPrintsUnknownsAsDashes) {
  std::vector<Row> rows = {
      {.metric = "new connections (CRR)", .unit = "conn/s", .path = "direct", .value = 13000, .work = "connection"},
      {.metric = "new connections (CRR)", .unit = "conn/s", .path = "two tunnels mTLS", .value = 2100,
       .work = "connection", .proxyCores = 0.96, .cpuMsPerWork = 0.45, .contextSwitchesPerWork = 6.0},
  };
  std::string table = costTable(rows);
  EXPECT_EQ(table.find("direct"), std::string::npos);
  EXPECT_NE(table.find("two tunnels mTLS"), std::string::npos);
  EXPECT_NE(table.find("0.4500"), std::string::npos);
  EXPECT_NE(table.find(" -\n"), std::string::npos);  // syscalls unknown

  std::vector<Row> earlier = {rows[1]};
  earlier[0].value = 1500;
  earlier[0].ratioToDirect = 0.12;
  rows[1].ratioToDirect = 0.16;
  std::string compared = comparison(earlier, rows);
  EXPECT_NE(compared.find("1500.0"), std::string::npos);
  EXPECT_NE(compared.find("0.12x"), std::string::npos);
  EXPECT_NE(compared.find("0.16x"), std::string::npos);
  EXPECT_NE(comparison({}, rows).find("no row of this run"), std::string::npos);
}

}  // namespace
}  // namespace sluice::bench
