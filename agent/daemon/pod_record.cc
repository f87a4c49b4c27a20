#include "daemon/pod_record.h"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "sluice/common/files.h"

namespace sluice::agent {

using nlohmann::json;

json toJson(const PodRecord& pod) {
  return json{{"uid", pod.uid},
              {"name", pod.name},
              {"namespace", pod.ns},
              {"serviceAccount", pod.serviceAccount},
              {"containerId", pod.containerId},
              {"netnsPath", pod.netnsPath},
              {"netnsCookie", pod.netnsCookie},
              {"addresses", pod.addresses},
              {"labels", pod.labels},
              {"annotations", pod.annotations},
              {"optedOut", pod.optedOut},
              {"optOutReason", pod.optOutReason},
              {"closing", pod.closing}};
}

namespace {

template <typename T>
Status field(const json& j, const char* name, T& out, bool required = true) {
  if (!j.contains(name)) {
    if (required) return fail(fmt::format("missing field \"{}\"", name));
    return {};
  }
  try {
    out = j.at(name).get<T>();
  } catch (const json::exception&) {
    return fail(fmt::format("field \"{}\" has the wrong type", name));
  }
  return {};
}

}  // namespace

Result<PodRecord> podFromJson(const json& j) {
  if (!j.is_object()) return fail("pod record is not an object");
  PodRecord pod;
  SLUICE_TRY(field(j, "uid", pod.uid), "pod record");
  SLUICE_TRY(field(j, "name", pod.name), "pod record");
  SLUICE_TRY(field(j, "namespace", pod.ns), "pod record");
  SLUICE_TRY(field(j, "serviceAccount", pod.serviceAccount, false), "pod record");
  SLUICE_TRY(field(j, "containerId", pod.containerId), "pod record");
  SLUICE_TRY(field(j, "netnsPath", pod.netnsPath), "pod record");
  SLUICE_TRY(field(j, "netnsCookie", pod.netnsCookie, false), "pod record");
  SLUICE_TRY(field(j, "addresses", pod.addresses, false), "pod record");
  SLUICE_TRY(field(j, "labels", pod.labels, false), "pod record");
  SLUICE_TRY(field(j, "annotations", pod.annotations, false), "pod record");
  SLUICE_TRY(field(j, "optedOut", pod.optedOut, false), "pod record");
  SLUICE_TRY(field(j, "optOutReason", pod.optOutReason, false), "pod record");
  SLUICE_TRY(field(j, "closing", pod.closing, false), "pod record");
  return pod;
}

Status savePods(const std::string& path, const std::vector<PodRecord>& pods) {
  json doc{{"version", 1}, {"pods", json::array()}};
  for (const auto& pod : pods) doc["pods"].push_back(toJson(pod));
  return writeFileAtomically(path, doc.dump(2) + "\n", 0600);
}

Result<std::vector<PodRecord>> loadPods(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::vector<PodRecord>{};
  std::stringstream text;
  text << in.rdbuf();
  json doc = json::parse(text.str(), nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return fail(path + ": not a JSON object");
  if (doc.value("version", 0) != 1) return fail(path + ": unknown state version");
  if (!doc.contains("pods") || !doc["pods"].is_array()) return fail(path + ": no \"pods\" list");
  std::vector<PodRecord> pods;
  for (const auto& entry : doc["pods"]) {
    auto pod = podFromJson(entry);
    if (!pod) return fail(std::move(pod.error()).context(path));
    pods.push_back(std::move(*pod));
  }
  return pods;
}

}  // namespace sluice::agent
