#include "config/config_loader.h"

#include <fmt/format.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "config/resource_parsers.h"
#include "sluice/common/socket_address.h"

namespace sluice::controller {
namespace fs = std::filesystem;
namespace v1 = config::v1;

namespace {

constexpr size_t kMaxFileBytes = 8 << 20;

struct KindInfo {
  std::vector<std::string_view> apiVersions;
  std::function<void(const ObjectMeta&, const YAML::Node&, StrictReader&, v1::Resource&)> parse;
};

const std::map<std::string, KindInfo, std::less<>>& kinds() {
  static const std::map<std::string, KindInfo, std::less<>> table = {
      {"Workload", {{"sluice.io/v1alpha1"}, [](auto& m, auto& s, auto& r, auto& out) { *out.mutable_workload() = parseWorkload(m, s, r); }}},
      {"Service", {{"v1"}, [](auto& m, auto& s, auto& r, auto& out) { *out.mutable_service() = parseService(m, s, r); }}},
      {"VirtualService",
       {{"networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3"},
        [](auto& m, auto& s, auto& r, auto& out) { *out.mutable_virtual_service() = parseVirtualService(m, s, r); }}},
      {"DestinationRule",
       {{"networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3"},
        [](auto& m, auto& s, auto& r, auto& out) { *out.mutable_destination_rule() = parseDestinationRule(m, s, r); }}},
      {"AuthorizationPolicy",
       {{"security.istio.io/v1", "security.istio.io/v1beta1"},
        [](auto& m, auto& s, auto& r, auto& out) { *out.mutable_authorization_policy() = parseAuthorizationPolicy(m, s, r); }}},
      {"PeerAuthentication",
       {{"security.istio.io/v1", "security.istio.io/v1beta1"},
        [](auto& m, auto& s, auto& r, auto& out) { *out.mutable_peer_authentication() = parsePeerAuthentication(m, s, r); }}},
      {"LocalRateLimit",
       {{"sluice.io/v1alpha1"},
        [](auto& m, auto& s, auto& r, auto& out) { *out.mutable_local_rate_limit() = parseLocalRateLimit(m, s, r); }}},
  };
  return table;
}

std::string supportedKinds() {
  std::string out;
  for (const auto& [kind, info] : kinds()) out += (out.empty() ? "" : ", ") + kind;
  return out;
}

bool selectorMatches(const google::protobuf::Map<std::string, std::string>& selector,
                     const google::protobuf::Map<std::string, std::string>& labels) {
  for (const auto& [k, v] : selector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

}  // namespace

std::vector<const v1::Workload*> ConfigSet::workloads() const {
  std::vector<const v1::Workload*> out;
  for (const auto& [_, r] : resources)
    if (r.resource.has_workload()) out.push_back(&r.resource.workload());
  return out;
}

std::vector<const v1::Service*> ConfigSet::services() const {
  std::vector<const v1::Service*> out;
  for (const auto& [_, r] : resources)
    if (r.resource.has_service()) out.push_back(&r.resource.service());
  return out;
}

Status checkYamlNesting(const std::string& file, std::string_view text) {
  constexpr int kMaxFlowDepth = 64;
  constexpr size_t kMaxIndent = 256;
  int depth = 0, line = 1;
  size_t indent = 0;
  bool atLineStart = true, inQuote = false;
  char quote = 0;
  for (char c : text) {
    if (c == '\n') {
      ++line;
      indent = 0;
      atLineStart = true;
      inQuote = false;  // YAML flow scalars may span lines, but counting conservatively is fine
      continue;
    }
    if (atLineStart && (c == ' ' || c == '-')) {
      if (++indent > kMaxIndent) {
        return fail(fmt::format("{}: line {}: nested deeper than Sluice accepts (indentation over {} columns)", file, line, kMaxIndent));
      }
      continue;
    }
    atLineStart = false;
    if (inQuote) {
      if (c == quote) inQuote = false;
      continue;
    }
    if (c == '"' || c == '\'') {
      inQuote = true;
      quote = c;
    } else if (c == '#') {
      // a comment: the rest of the line does not nest (brackets inside don't count)
      inQuote = true;
      quote = '\n';
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxFlowDepth) {
        return fail(fmt::format("{}: line {}: nested deeper than Sluice accepts (more than {} levels of [ or {{)", file, line, kMaxFlowDepth));
      }
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return {};
}

namespace {

// yaml-cpp 0.7's LoadAll never returns on a document that starts with a stray ',' (the flow
// entry is never consumed, so every call yields one more empty document; found by the fuzzer).
// A first pass over the parser's events counts documents: a text can't hold more than one per
// three bytes ("---"), so more means the parser stopped making progress. The same pass refuses
// aliases (*name): nested ones expand exponentially ("billion laughs"), and Kubernetes objects
// written by people or tools don't need them.
class DocumentCounter final : public YAML::EventHandler {
 public:
  explicit DocumentCounter(size_t limit) : limit_(limit) {}
  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++documents_ > limit_) throw YAML::ParserException(mark, "a stray ',' outside a flow collection");
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override {
    throw YAML::ParserException(mark, "YAML aliases (*name) are not accepted: write the value out");
  }
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

 private:
  size_t limit_, documents_ = 0;
};

void checkParserProgress(const std::string& text) {
  std::stringstream stream(text);
  YAML::Parser parser(stream);
  DocumentCounter counter(text.size() / 3 + 2);
  while (parser.HandleNextDocument(counter)) {
  }
}

// Records the workload's addresses in `into`; refuses one another workload already has.
Status claimAddresses(const LoadedResource& loaded, ConfigSet& into) {
  const v1::Workload& w = loaded.resource.workload();
  for (int i = 0; i < w.addresses_size(); ++i) {
    auto address = SocketAddress::fromIp(w.addresses(i), 0);
    if (!address) continue;  // the parser refused it already
    auto [owner, claimed] = into.workloadAddresses.emplace(address->ip(), loaded.resource.name());
    if (!claimed) {
      const LoadedResource& other = into.resources.at(owner->second);
      return fail(fmt::format("{}: Workload {}/{}: spec.addresses[{}]: {} is already the address of {} ({}): two workloads "
                              "cannot share an address", loaded.file, w.namespace_(), w.name(), i, w.addresses(i),
                              owner->second, other.file));
    }
  }
  return {};
}

}  // namespace

Status loadConfigText(const std::string& file, const std::string& text, ConfigSet& into) {
  SLUICE_TRY(checkYamlNesting(file, text), "configuration refused");
  std::vector<YAML::Node> docs;
  try {
    checkParserProgress(text);
    docs = YAML::LoadAll(text);
  } catch (const YAML::Exception& e) {
    return fail(fmt::format("{}: line {}, column {}: not valid YAML: {}", file, e.mark.line + 1, e.mark.column + 1, e.msg));
  }
  // The readers check every type before they look inside; this catch is the last line of
  // defence: a yaml-cpp exception from hostile input is a refusal, never a crash.
  try {
    for (size_t d = 0; d < docs.size(); ++d) {
      const YAML::Node& doc = docs[d];
      if (doc.IsNull()) continue;  // an empty document between separators
      std::string where = fmt::format("{}: document {}", file, d + 1);
      if (!doc.IsMap()) return fail(where + ": not a mapping (expected apiVersion, kind, metadata, spec)");
      std::string apiVersion = doc["apiVersion"] && doc["apiVersion"].IsScalar() ? doc["apiVersion"].Scalar() : "";
      std::string kind = doc["kind"] && doc["kind"].IsScalar() ? doc["kind"].Scalar() : "";
      if (apiVersion.empty() || kind.empty()) return fail(where + ": apiVersion and kind are required");
      auto info = kinds().find(kind);
      if (info == kinds().end()) {
        return fail(fmt::format("{}: kind {} is not supported (supported: {})", where, kind, supportedKinds()));
      }
      if (std::find(info->second.apiVersions.begin(), info->second.apiVersions.end(), apiVersion) ==
          info->second.apiVersions.end()) {
        return fail(fmt::format("{}: {} with apiVersion {} is not supported (use {})", where, kind, apiVersion,
                                info->second.apiVersions.front()));
      }
      for (const auto& entry : doc) {
        std::string key = entry.first.IsScalar() ? entry.first.Scalar() : "?";
        if (key != "apiVersion" && key != "kind" && key != "metadata" && key != "spec" && key != "status") {
          return fail(fmt::format("{}: {}: field {} is not supported", where, kind, key));
        }
      }
      if (!doc["metadata"]) return fail(fmt::format("{}: {}: metadata is required", where, kind));
      if (!doc["metadata"].IsMap()) return fail(fmt::format("{}: {}: metadata must be a mapping", where, kind));
      std::string nameHint = doc["metadata"]["name"] && doc["metadata"]["name"].IsScalar() ? doc["metadata"]["name"].Scalar() : "?";
      StrictReader reader(file, fmt::format("{} {}", kind, nameHint));
      ObjectMeta meta = parseMeta(doc["metadata"], reader);
      if (reader.failed()) return fail(reader.error());
      StrictReader r(file, fmt::format("{} {}/{}", kind, meta.ns, meta.name));
      YAML::Node spec = doc["spec"];
      if (!spec && kind != "AuthorizationPolicy") return fail(fmt::format("{}: {} {}/{}: spec is required", file, kind, meta.ns, meta.name));
      v1::Resource resource;
      resource.set_name(fmt::format("{}/{}/{}", kind, meta.ns, meta.name));
      info->second.parse(meta, spec ? spec : YAML::Node(YAML::NodeType::Null), r, resource);
      if (r.failed()) return fail(r.error());
      std::string key = resource.name();  // not resource.name() beside std::move(resource): unordered
      auto [it, inserted] = into.resources.emplace(std::move(key), LoadedResource{file, std::move(resource)});
      if (!inserted) {
        return fail(fmt::format("{}: {} {}/{} is also defined in {}", file, kind, meta.ns, meta.name, it->second.file));
      }
      if (it->second.resource.has_workload()) SLUICE_TRY(claimAddresses(it->second, into), "configuration refused");
    }
  } catch (const YAML::Exception& e) {
    return fail(fmt::format("{}: line {}, column {}: {}", file, e.mark.line + 1, e.mark.column + 1, e.msg));
  }
  return {};
}

Status mergeConfig(ConfigSet& into, ConfigSet one) {
  for (const auto& [name, loaded] : one.resources) {
    if (auto it = into.resources.find(name); it != into.resources.end()) {
      return fail(fmt::format("{}: {} is also defined in {}", loaded.file, name, it->second.file));
    }
  }
  for (const auto& [address, owner] : one.workloadAddresses) {
    if (auto it = into.workloadAddresses.find(address); it != into.workloadAddresses.end()) {
      return fail(fmt::format("{}: {} is already the address of {}: two workloads cannot share an address",
                              one.resources.at(owner).file, address, it->second));
    }
  }
  into.workloadAddresses.merge(one.workloadAddresses);
  into.resources.merge(one.resources);
  return {};
}

Result<ConfigSet> loadConfigDirectory(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return fail(fmt::format("{} is not a directory", dir));
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    auto ext = entry.path().extension();
    if (entry.is_regular_file() && (ext == ".yaml" || ext == ".yml")) files.push_back(entry.path());
  }
  if (ec) return fail(fmt::format("read {}: {}", dir, ec.message()));
  std::sort(files.begin(), files.end());
  ConfigSet config;
  for (const auto& path : files) {
    if (fs::file_size(path, ec) > kMaxFileBytes) return fail(fmt::format("{}: larger than 8 MiB", path.filename().string()));
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    if (!in && !in.eof()) return failErrno("read " + path.string());
    SLUICE_TRY(loadConfigText(path.filename().string(), text.str(), config), "configuration refused");
  }
  finishConfig(config);
  return config;
}

void finishConfig(ConfigSet& config) {
  auto workloads = config.workloads();
  for (auto& [_, loaded] : config.resources) {
    if (!loaded.resource.has_service()) continue;
    v1::Service* service = loaded.resource.mutable_service();
    service->clear_endpoints();
    if (service->selector().empty()) continue;  // a Service without selector has no endpoints
    for (const v1::Workload* w : workloads) {
      if (w->namespace_() != service->namespace_() || !selectorMatches(service->selector(), w->labels())) continue;
      for (const auto& address : w->addresses()) {
        auto* e = service->add_endpoints();
        e->set_workload_uid(w->uid());
        e->set_address(address);
        *e->mutable_labels() = w->labels();
        e->set_weight(1);
      }
    }
  }
  // A resource's version is a stable hash (FNV-1a 64) of its deterministic serialization: equal
  // content gives an equal version across controller restarts, so nodes resuming a stream
  // need not be sent what they already have.
  for (auto& [_, loaded] : config.resources) {
    loaded.resource.clear_version();
    std::string bytes;
    {
      google::protobuf::io::StringOutputStream stream(&bytes);
      google::protobuf::io::CodedOutputStream coded(&stream);
      coded.SetSerializationDeterministic(true);
      loaded.resource.SerializeToCodedStream(&coded);
    }
    uint64_t hash = 0xcbf29ce484222325ull;
    for (unsigned char c : bytes) hash = (hash ^ c) * 0x100000001b3ull;
    loaded.resource.set_version(fmt::format("{:016x}", hash));
  }
}

}  // namespace sluice::controller
