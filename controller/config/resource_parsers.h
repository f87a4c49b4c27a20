// One parser per supported kind: the object's metadata and spec (already split from the YAML
// stream) into its protobuf message, through a StrictReader. Semantic rules that concern the
// object alone (weights within 0..100, a route with destinations, unique subset names, ...)
// are checked here too; rules across objects belong to the analyzer.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>

#include "config/strict_yaml.h"
#include "sluice/config/v1/config.pb.h"

namespace sluice::controller {

struct ObjectMeta {
  std::string name, ns, uid;
  google::protobuf::Map<std::string, std::string> labels;
  google::protobuf::Map<std::string, std::string> annotations;
};

inline constexpr const char* kMirrorSafeAnnotation = "sluice.io/mirror-safe";

// metadata: name (required, DNS label rules), namespace (default "default"), labels, uid.
ObjectMeta parseMeta(const YAML::Node& metadata, StrictReader& r);

config::v1::Workload parseWorkload(const ObjectMeta& meta, const YAML::Node& spec, StrictReader& r);
config::v1::Service parseService(const ObjectMeta& meta, const YAML::Node& spec, StrictReader& r);
config::v1::VirtualService parseVirtualService(const ObjectMeta& meta, const YAML::Node& spec, StrictReader& r);
// DestinationRule (destination_rule_parser.cc).
config::v1::DestinationRule parseDestinationRule(const ObjectMeta& meta, const YAML::Node& spec, StrictReader& r);
config::v1::AuthorizationPolicy parseAuthorizationPolicy(const ObjectMeta& meta, const YAML::Node& spec, StrictReader& r);
config::v1::PeerAuthentication parsePeerAuthentication(const ObjectMeta& meta, const YAML::Node& spec, StrictReader& r);
// Sluice's LocalRateLimit (local_rate_limit_parser.cc).
config::v1::LocalRateLimit parseLocalRateLimit(const ObjectMeta& meta, const YAML::Node& spec, StrictReader& r);

}  // namespace sluice::controller
