#include "config/strict_yaml.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>

namespace sluice::controller {

std::optional<google::protobuf::Duration> parseDuration(std::string_view text) {
  if (text.empty() || text.front() == '-') return std::nullopt;
  double totalNanos = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t numberEnd = pos;
    while (numberEnd < text.size() && (std::isdigit(static_cast<unsigned char>(text[numberEnd])) || text[numberEnd] == '.')) {
      ++numberEnd;
    }
    if (numberEnd == pos) return std::nullopt;
    double value = 0;
    auto [end, ec] = std::from_chars(text.data() + pos, text.data() + numberEnd, value);
    if (ec != std::errc() || end != text.data() + numberEnd) return std::nullopt;
    size_t unitEnd = numberEnd;
    while (unitEnd < text.size() && std::isalpha(static_cast<unsigned char>(text[unitEnd]))) ++unitEnd;
    std::string_view unit = text.substr(numberEnd, unitEnd - numberEnd);
    double scale;
    if (unit == "ns") scale = 1;
    else if (unit == "us" || unit == "µs") scale = 1e3;
    else if (unit == "ms") scale = 1e6;
    else if (unit == "s") scale = 1e9;
    else if (unit == "m") scale = 60e9;
    else if (unit == "h") scale = 3600e9;
    else return std::nullopt;
    totalNanos += value * scale;
    pos = unitEnd;
  }
  if (!std::isfinite(totalNanos) || totalNanos > 1e9 * 86400 * 365 * 100) return std::nullopt;
  google::protobuf::Duration d;
  auto nanos = static_cast<int64_t>(std::llround(totalNanos));
  d.set_seconds(nanos / 1000000000);
  d.set_nanos(static_cast<int32_t>(nanos % 1000000000));
  return d;
}

Error StrictReader::error() const {
  if (!error_) return Error("no error");
  return Error(fmt::format("{}: {}: {}: {}", file_, object_, error_->first.empty() ? "(object)" : error_->first,
                           error_->second));
}

void StrictReader::fail(const std::string& path, const std::string& problem) {
  if (!error_) error_ = std::make_pair(path, problem);
}

bool StrictReader::mapping(const YAML::Node& node, const std::string& path,
                           std::initializer_list<std::string_view> allowed) {
  if (failed()) return false;
  if (!node.IsMap()) {
    fail(path, "must be a mapping");
    return false;
  }
  for (const auto& entry : node) {
    std::string key = entry.first.IsScalar() ? entry.first.Scalar() : "?";
    bool known = false;
    for (auto a : allowed) known = known || a == key;
    if (!known) {
      std::string list;
      for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      fail(child(path, key), fmt::format("not supported by Sluice (supported here: {})", list));
      return false;
    }
  }
  return true;
}

bool StrictReader::sequence(const YAML::Node& node, const std::string& path) {
  if (failed()) return false;
  if (!node.IsSequence()) {
    fail(path, "must be a list");
    return false;
  }
  return true;
}

void StrictReader::string(const YAML::Node& node, const std::string& path, std::string* out, bool required) {
  if (failed()) return;
  if (!node.IsDefined() || node.IsNull()) {
    if (required) fail(path, "is required");
    return;
  }
  if (!node.IsScalar()) return fail(path, "must be a string");
  *out = node.Scalar();
  if (required && out->empty()) fail(path, "must not be empty");
}

void StrictReader::boolean(const YAML::Node& node, const std::string& path, bool* out) {
  if (failed() || !node.IsDefined() || node.IsNull()) return;
  const std::string text = node.IsScalar() ? node.Scalar() : "";
  // YAML 1.2's booleans only: "yes", "on" and "1" are YAML 1.1 spellings Kubernetes refuses too.
  if (text == "true") *out = true;
  else if (text == "false") *out = false;
  else fail(path, fmt::format("must be true or false (got '{}')", text));
}

void StrictReader::unsignedInteger(const YAML::Node& node, const std::string& path, uint32_t* out, uint32_t max) {
  if (failed() || !node.IsDefined() || node.IsNull()) return;
  const std::string text = node.IsScalar() ? node.Scalar() : "";
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value > max) {
    return fail(path, fmt::format("must be a whole number from 0 to {} (got '{}')", max, text));
  }
  *out = static_cast<uint32_t>(value);
}

void StrictReader::integer(const YAML::Node& node, const std::string& path, int32_t* out, int32_t min, int32_t max) {
  if (failed() || !node.IsDefined() || node.IsNull()) return;
  const std::string text = node.IsScalar() ? node.Scalar() : "";
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < min || value > max) {
    return fail(path, fmt::format("must be a whole number from {} to {} (got '{}')", min, max, text));
  }
  *out = static_cast<int32_t>(value);
}

void StrictReader::port(const YAML::Node& node, const std::string& path, uint32_t* out, bool required) {
  if (failed()) return;
  if (!node.IsDefined() || node.IsNull()) {
    if (required) fail(path, "is required");
    return;
  }
  uint32_t value = 0;
  unsignedInteger(node, path, &value, 65535);
  if (!failed() && value == 0) return fail(path, "must be a port from 1 to 65535");
  *out = value;
}

void StrictReader::percentage(const YAML::Node& node, const std::string& path, double* out) {
  if (failed() || !node.IsDefined() || node.IsNull()) return;
  if (!mapping(node, path, {"value"})) return;
  const YAML::Node value = node["value"];
  std::string text = value.IsScalar() ? value.Scalar() : "";
  double v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || !(v >= 0 && v <= 100)) {
    return fail(child(path, "value"), fmt::format("must be a percentage from 0 to 100 (got '{}')", text));
  }
  *out = v;
}

void StrictReader::duration(const YAML::Node& node, const std::string& path, google::protobuf::Duration* out) {
  if (failed() || !node.IsDefined() || node.IsNull()) return;
  std::string text = node.IsScalar() ? node.Scalar() : "";
  auto d = parseDuration(text);
  if (!d) return fail(path, fmt::format("must be a duration such as 250ms, 10s or 1m (got '{}')", text));
  *out = *d;
}

void StrictReader::stringList(const YAML::Node& node, const std::string& path,
                              google::protobuf::RepeatedPtrField<std::string>* out) {
  if (failed() || !node.IsDefined() || node.IsNull()) return;
  if (!sequence(node, path)) return;
  for (size_t i = 0; i < node.size(); ++i) {
    if (!node[i].IsScalar()) return fail(index(path, i), "must be a string");
    out->Add(std::string(node[i].Scalar()));
  }
}

void StrictReader::stringMap(const YAML::Node& node, const std::string& path,
                             google::protobuf::Map<std::string, std::string>* out) {
  if (failed() || !node.IsDefined() || node.IsNull()) return;
  if (!node.IsMap()) return fail(path, "must be a mapping of strings");
  for (const auto& entry : node) {
    if (!entry.first.IsScalar() || !entry.second.IsScalar()) return fail(path, "must be a mapping of strings");
    (*out)[entry.first.Scalar()] = entry.second.Scalar();
  }
}

}  // namespace sluice::controller
