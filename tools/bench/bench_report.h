// sluice-bench's results: one Row per (metric, path), printed as the cost table and written as
// a machine-readable summary (--json FILE) that a later run compares itself with (--compare
// FILE). Pure: no processes, no clocks.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace sluice::bench {

struct Row {
  std::string metric;  // "throughput, 1 stream"
  std::string unit;    // of value: "Gbit/s", "us", "conn/s", "req/s"
  std::string path;    // "direct", "two tunnels mTLS", "haproxy mTLS (peer)", ...
  double value = 0;    // median over the repetitions
  std::optional<double> ratioToDirect, ratioToPeer;
  // What the path's proxies (both ztunnels, or both haproxies of the peer; none for direct)
  // spent per unit of work ("MB", "round trip", "connection", "request"), medians.
  std::string work;
  double proxyCores = 0;
  std::optional<double> cpuMsPerWork, contextSwitchesPerWork, syscallsPerWork;
};

// The machine-readable summary: {"schema": "sluice-bench/1", "seconds", "repeat", "rows": [...]}.
nlohmann::json toJson(const std::vector<Row>& rows, int seconds, int repeat);
// Rows of a summary written by toJson; fails (nothing) on anything else.
std::optional<std::vector<Row>> rowsFromJson(const nlohmann::json& summary);

// The cost table: for every row with proxies, cores and CPU / context switches / syscalls per
// unit of work ("-" where unknown).
std::string costTable(const std::vector<Row>& rows);
// Each row found in both runs: its value and ratio to direct then and now.
std::string comparison(const std::vector<Row>& before, const std::vector<Row>& now);

}  // namespace sluice::bench
