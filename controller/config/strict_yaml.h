// Strict reading of one Kubernetes-style YAML object into protobuf messages. Every mapping is
// checked against the keys Sluice supports, so an unsupported field is refused by name instead
// of being silently ignored (an operator who writes `corsPolicy` must learn that it does
// nothing here). The first problem is kept, with the file, the object and the field path:
//   reviews.yaml: VirtualService shop/reviews: spec.http[0].corsPolicy: not supported by Sluice
//   (supported here: name, match, route, timeout, retries, fault, mirror, mirrorPercentage, mirrors)
#pragma once

#include <google/protobuf/duration.pb.h>
#include <google/protobuf/map.h>
#include <google/protobuf/repeated_field.h>
#include <yaml-cpp/yaml.h>

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include "sluice/common/error.h"

namespace sluice::controller {

// Parses a Go/Istio duration: "10s", "1.5s", "250ms", "2m", "1h30m", "100us". Refuses negative,
// empty and unit-less values.
std::optional<google::protobuf::Duration> parseDuration(std::string_view text);

class StrictReader {
 public:
  StrictReader(std::string file, std::string object) : file_(std::move(file)), object_(std::move(object)) {}

  bool failed() const { return error_.has_value(); }
  // The first problem, formatted with file, object and field.
  Error error() const;
  // Records a problem at `path` (only the first one is kept).
  void fail(const std::string& path, const std::string& problem);

  // `node` must be a mapping whose keys are all in `allowed`.
  bool mapping(const YAML::Node& node, const std::string& path, std::initializer_list<std::string_view> allowed);
  bool sequence(const YAML::Node& node, const std::string& path);

  // Scalars. `node` may be undefined (absent): then nothing is written and no error is raised,
  // unless `required`.
  void string(const YAML::Node& node, const std::string& path, std::string* out, bool required = false);
  void port(const YAML::Node& node, const std::string& path, uint32_t* out, bool required = false);
  void integer(const YAML::Node& node, const std::string& path, int32_t* out, int32_t min, int32_t max);
  void unsignedInteger(const YAML::Node& node, const std::string& path, uint32_t* out, uint32_t max);
  void percentage(const YAML::Node& node, const std::string& path, double* out);  // {value: 0..100}
  void boolean(const YAML::Node& node, const std::string& path, bool* out);      // true or false, nothing else
  void duration(const YAML::Node& node, const std::string& path, google::protobuf::Duration* out);
  void stringList(const YAML::Node& node, const std::string& path, google::protobuf::RepeatedPtrField<std::string>* out);
  void stringMap(const YAML::Node& node, const std::string& path, google::protobuf::Map<std::string, std::string>* out);

  static std::string index(const std::string& path, size_t i) { return path + "[" + std::to_string(i) + "]"; }
  static std::string child(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
  }

 private:
  std::string file_, object_;
  std::optional<std::pair<std::string, std::string>> error_;  // path, problem
};

}  // namespace sluice::controller
