#include "bench_report.h"

#include <fmt/format.h>

namespace sluice::bench {
namespace {

constexpr const char* kSchema = "sluice-bench/1";

nlohmann::json optional(const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); }

std::optional<double> optionalFrom(const nlohmann::json& row, const char* key) {
  auto it = row.find(key);
  if (it == row.end() || !it->is_number()) return std::nullopt;
  return it->get<double>();
}

std::string cell(const std::optional<double>& v, const char* format) {
  return v ? fmt::format(fmt::runtime(format), *v) : "-";
}

}  // namespace

nlohmann::json toJson(const std::vector<Row>& rows, int seconds, int repeat) {
  nlohmann::json out = {{"schema", kSchema}, {"seconds", seconds}, {"repeat", repeat}, {"rows", nlohmann::json::array()}};
  for (const Row& r : rows) {
    out["rows"].push_back({{"metric", r.metric},
                           {"unit", r.unit},
                           {"path", r.path},
                           {"value", r.value},
                           {"ratio_to_direct", optional(r.ratioToDirect)},
                           {"ratio_to_peer", optional(r.ratioToPeer)},
                           {"work", r.work},
                           {"proxy_cores", r.proxyCores},
                           {"cpu_ms_per_work", optional(r.cpuMsPerWork)},
                           {"context_switches_per_work", optional(r.contextSwitchesPerWork)},
                           {"syscalls_per_work", optional(r.syscallsPerWork)}});
  }
  return out;
}

std::optional<std::vector<Row>> rowsFromJson(const nlohmann::json& summary) {
  if (!summary.is_object() || summary.value("schema", "") != kSchema) return std::nullopt;
  auto rows = summary.find("rows");
  if (rows == summary.end() || !rows->is_array()) return std::nullopt;
  std::vector<Row> out;
  for (const auto& row : *rows) {
    if (!row.is_object()) return std::nullopt;
    auto text = [&](const char* key) -> std::optional<std::string> {
      auto it = row.find(key);
      if (it == row.end() || !it->is_string()) return std::nullopt;
      return it->get<std::string>();
    };
    auto metric = text("metric"), unit = text("unit"), path = text("path");
    auto value = optionalFrom(row, "value");
    if (!metric || !unit || !path || !value) return std::nullopt;
    out.push_back({.metric = *metric,
                   .unit = *unit,
                   .path = *path,
                   .value = *value,
                   .ratioToDirect = optionalFrom(row, "ratio_to_direct"),
                   .ratioToPeer = optionalFrom(row, "ratio_to_peer"),
                   .work = text("work").value_or(""),
                   .proxyCores = optionalFrom(row, "proxy_cores").value_or(0),
                   .cpuMsPerWork = optionalFrom(row, "cpu_ms_per_work"),
                   .contextSwitchesPerWork = optionalFrom(row, "context_switches_per_work"),
                   .syscallsPerWork = optionalFrom(row, "syscalls_per_work")});
  }
  return out;
}

std::string costTable(const std::vector<Row>& rows) {
  std::string out = fmt::format("{:<28} {:<20} {:<12} {:>7} {:>12} {:>12} {:>14}\n", "metric", "path", "per", "cores",
                                "CPU [ms]", "ctx switches", "syscalls");
  for (const Row& r : rows) {
    if (r.work.empty() || r.path == "direct") continue;
    out += fmt::format("{:<28} {:<20} {:<12} {:>7.2f} {:>12} {:>12} {:>14}\n", r.metric, r.path, r.work, r.proxyCores,
                       cell(r.cpuMsPerWork, "{:.4f}"), cell(r.contextSwitchesPerWork, "{:.2f}"),
                       cell(r.syscallsPerWork, "{:.2f}"));
  }
  return out;
}

std::string comparison(const std::vector<Row>& before, const std::vector<Row>& now) {
  std::string out = fmt::format("{:<28} {:<20} {:>14} {:>14} {:>12} {:>12}\n", "metric", "path", "value before",
                                "value now", "vs direct", "now");
  size_t matched = 0;
  for (const Row& r : now) {
    for (const Row& b : before) {
      if (b.metric != r.metric || b.path != r.path || b.unit != r.unit) continue;
      ++matched;
      out += fmt::format("{:<28} {:<20} {:>14.1f} {:>14.1f} {:>12} {:>12}\n", r.metric, r.path, b.value, r.value,
                         cell(b.ratioToDirect, "{:.2f}x"), cell(r.ratioToDirect, "{:.2f}x"));
    }
  }
  if (matched == 0) out += "(no row of this run is in the earlier one)\n";
  return out;
}

}  // namespace sluice::bench
