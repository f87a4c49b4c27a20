#include "capture/capture_datapath.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <cstring>
#include <filesystem>

#include "sluice_capture.skel.h"
#include "sluice_inbound.skel.h"

namespace sluice::agent {
namespace fs = std::filesystem;
namespace {

// Programs attached at the cgroup root, and the pin name of each one's link.
struct CgroupProgram {
  const char* pin;
  bpf_program* (*get)(sluice_capture*);
};
const CgroupProgram kCgroupPrograms[] = {
    {"connect4", [](sluice_capture* s) { return s->progs.sluice_connect4; }},
    {"connect6", [](sluice_capture* s) { return s->progs.sluice_connect6; }},
    {"sockops", [](sluice_capture* s) { return s->progs.sluice_sockops; }},
    {"getpeername4", [](sluice_capture* s) { return s->progs.sluice_getpeername4; }},
    {"getpeername6", [](sluice_capture* s) { return s->progs.sluice_getpeername6; }},
    {"getsockname4", [](sluice_capture* s) { return s->progs.sluice_getsockname4; }},
    {"getsockname6", [](sluice_capture* s) { return s->progs.sluice_getsockname6; }},
};

Status ensureDir(const std::string& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) return fail(fmt::format("create {}: {}", path, ec.message()));
  return {};
}

// libbpf logs go through spdlog: warnings and errors (with the verifier log) stay visible.
int libbpfLog(enum libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  char buf[2048];
  int n = std::vsnprintf(buf, sizeof(buf), format, args);
  std::string_view text(buf, n > 0 ? std::min<size_t>(static_cast<size_t>(n), sizeof(buf) - 1) : 0);
  while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  if (level == LIBBPF_WARN) spdlog::warn("libbpf: {}", text);
  else spdlog::info("libbpf: {}", text);
  return 0;
}

// A pinned map is reused only when it has exactly the layout this build expects.
Status checkCompatible(bpf_map* map, int pinnedFd, const std::string& path) {
  bpf_map_info info{};
  uint32_t length = sizeof(info);
  if (bpf_obj_get_info_by_fd(pinnedFd, &info, &length) != 0) return failErrno("inspect " + path);
  if (info.type != static_cast<uint32_t>(bpf_map__type(map)) || info.key_size != bpf_map__key_size(map) ||
      info.value_size != bpf_map__value_size(map) || info.max_entries != bpf_map__max_entries(map)) {
    return fail(fmt::format(
        "pinned map {} has another layout (type {} key {} value {} max {}; expected {} {} {} {}); "
        "it was pinned by an incompatible agent: remove {} to start afresh",
        path, info.type, info.key_size, info.value_size, info.max_entries,
        static_cast<int>(bpf_map__type(map)), bpf_map__key_size(map), bpf_map__value_size(map),
        bpf_map__max_entries(map), path));
  }
  return {};
}

int libbpfErrno(long err) { return err < 0 ? static_cast<int>(-err) : errno; }

}  // namespace

Result<std::unique_ptr<CaptureDatapath>> CaptureDatapath::open(const CaptureOptions& options) {
  libbpf_set_print(libbpfLog);
  std::unique_ptr<CaptureDatapath> dp(new CaptureDatapath(options));
  SLUICE_TRY(dp->loadAndAttach(), "capture datapath");
  return dp;
}

void CaptureDatapath::LinkDeleter::operator()(bpf_link* link) const { bpf_link__destroy(link); }

CaptureDatapath::~CaptureDatapath() {
  // Closing our link and map descriptors does not detach anything: the pins keep them.
  links_.clear();
  podLinks_.clear();
  if (skel_ != nullptr) sluice_capture__destroy(skel_);
}

Status CaptureDatapath::loadAndAttach() {
  skel_ = sluice_capture__open();
  if (skel_ == nullptr) return failErrno("open BPF skeleton");
  skel_->rodata->tunnel_mark = options_.tunnelMark;
  skel_->rodata->delivery_mark = options_.deliveryMark;

  SLUICE_TRY(ensureDir(mapsDir()), "pin folder");
  SLUICE_TRY(ensureDir(linksDir() + "/sk_lookup"), "pin folder");
  bpf_map* map;
  int reused = 0;
  bpf_object__for_each_map(map, skel_->obj) {
    if (bpf_map__is_internal(map)) continue;  // .rodata etc. belong to this load only
    std::string path = mapsDir() + "/" + bpf_map__name(map);
    if (::access(path.c_str(), F_OK) != 0) continue;
    UniqueFd pinned(bpf_obj_get(path.c_str()));
    if (!pinned) return failErrno("open pinned map " + path);
    SLUICE_TRY(checkCompatible(map, pinned.get(), path), "adopt pinned maps");
    if (int err = bpf_map__reuse_fd(map, pinned.get()); err != 0) {
      return failErrno("reuse pinned map " + path, libbpfErrno(err));
    }
    ++reused;
  }
  if (int err = sluice_capture__load(skel_); err != 0) {
    return failErrno("load BPF programs (the verifier log is above)", libbpfErrno(err));
  }
  bpf_object__for_each_map(map, skel_->obj) {
    if (bpf_map__is_internal(map)) continue;
    std::string path = mapsDir() + "/" + bpf_map__name(map);
    if (::access(path.c_str(), F_OK) == 0) continue;
    if (int err = bpf_map__pin(map, path.c_str()); err != 0) return failErrno("pin " + path, libbpfErrno(err));
  }

  UniqueFd cgroup(::open(options_.cgroupPath.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cgroup) return failErrno("open cgroup " + options_.cgroupPath);
  int adoptedLinks = 0;
  for (const auto& program : kCgroupPrograms) {
    std::string pin = linksDir() + "/" + program.pin;
    bpf_link* link = nullptr;
    if (::access(pin.c_str(), F_OK) == 0) {
      // Adopt: the old program stays attached until the new one replaces it atomically.
      link = bpf_link__open(pin.c_str());
      if (link == nullptr) return failErrno("open pinned link " + pin);
      links_.emplace_back(link);
      if (int err = bpf_link__update_program(link, program.get(skel_)); err != 0) {
        return failErrno("replace program of " + pin, libbpfErrno(err));
      }
      ++adoptedLinks;
    } else {
      link = bpf_program__attach_cgroup(program.get(skel_), cgroup.get());
      if (link == nullptr) return failErrno(fmt::format("attach {} to {}", program.pin, options_.cgroupPath));
      links_.emplace_back(link);
      if (int err = bpf_link__pin(link, pin.c_str()); err != 0) return failErrno("pin " + pin, libbpfErrno(err));
    }
  }
  // Pods' sk_lookup links from the previous agent get the new program too.
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(linksDir() + "/sk_lookup", ec)) {
    uint64_t cookie = 0;
    std::string name = entry.path().filename().string();
    auto [end, parsed] = std::from_chars(name.data(), name.data() + name.size(), cookie);
    if (parsed != std::errc() || end != name.data() + name.size()) continue;  // not ours
    bpf_link* link = bpf_link__open(entry.path().c_str());
    if (link == nullptr) return failErrno("open pinned link " + entry.path().string());
    podLinks_[cookie].reset(link);
    SLUICE_TRY(withPodInbound(cookie, [&](bpf_program* program) -> Status {
                 if (int err = bpf_link__update_program(link, program); err != 0) {
                   return failErrno("replace program of " + entry.path().string(), libbpfErrno(err));
                 }
                 return {};
               }),
               "adopt pod links");
  }
  adopted_ = reused > 0 || adoptedLinks > 0;
  spdlog::info("capture programs {} at {} (pins in {}: {} maps reused, {} links adopted)",
               adopted_ ? "adopted" : "attached", options_.cgroupPath, options_.pinDir, reused, adoptedLinks);
  return {};
}

std::string CaptureDatapath::skLookupPin(uint64_t netnsCookie) const {
  return fmt::format("{}/sk_lookup/{}", linksDir(), netnsCookie);
}

Status CaptureDatapath::installPod(uint64_t netnsCookie, int netnsFd, const PodCapturePlan& plan) {
  sluice_pod pod = plan.pod;
  pod.flags = 0;
  // Keep redirection as it is when the pod is installed again (agent restart, replay).
  auto existing = podConfig(netnsCookie);
  if (existing && *existing) pod.flags = (*existing)->flags;
  if (int err = bpf_map__update_elem(skel_->maps.sluice_pods, &netnsCookie, sizeof(netnsCookie), &pod,
                                     sizeof(pod), BPF_ANY);
      err != 0) {
    return failErrno("install pod config", libbpfErrno(err));
  }
  // Counters start at zero once; a second install keeps them.
  std::vector<sluice_counters> zero(static_cast<size_t>(libbpf_num_possible_cpus()));
  int err = bpf_map__update_elem(skel_->maps.sluice_counters, &netnsCookie, sizeof(netnsCookie), zero.data(),
                                 zero.size() * sizeof(sluice_counters), BPF_NOEXIST);
  if (err != 0 && libbpfErrno(err) != EEXIST) return failErrno("install pod counters", libbpfErrno(err));
  for (const auto& cidr : plan.excludedCidrs) {
    sluice_cidr_key key{};
    key.prefixlen = 64 + cidr.prefixBits;
    key.netns_cookie = netnsCookie;
    std::memcpy(key.addr, cidr.addr, 16);
    uint8_t one = 1;
    err = bpf_map__update_elem(skel_->maps.sluice_excl_cidrs, &key, sizeof(key), &one, sizeof(one), BPF_ANY);
    if (err != 0) return failErrno("install excluded CIDR", libbpfErrno(err));
  }
  std::string pin = skLookupPin(netnsCookie);
  if (::access(pin.c_str(), F_OK) != 0) {
    return withPodInbound(netnsCookie, [&](bpf_program* program) -> Status {
      bpf_link* link = bpf_program__attach_netns(program, netnsFd);
      if (link == nullptr) return failErrno("attach sk_lookup to the pod's network namespace");
      podLinks_[netnsCookie].reset(link);
      if (int e = bpf_link__pin(link, pin.c_str()); e != 0) return failErrno("pin " + pin, libbpfErrno(e));
      return {};
    });
  }
  return {};
}

Status CaptureDatapath::withPodInbound(uint64_t netnsCookie, const std::function<Status(bpf_program*)>& use) {
  std::unique_ptr<sluice_inbound, void (*)(sluice_inbound*)> inbound(sluice_inbound__open(), &sluice_inbound__destroy);
  if (!inbound) return failErrno("open the inbound BPF object");
  inbound->rodata->pod_netns_cookie = netnsCookie;
  // The node's maps, not maps of its own: one set per node, whatever the number of pods.
  bpf_map* map;
  bpf_object__for_each_map(map, inbound->obj) {
    if (bpf_map__is_internal(map)) continue;
    bpf_map* nodeMap = bpf_object__find_map_by_name(skel_->obj, bpf_map__name(map));
    if (nodeMap == nullptr) return fail(fmt::format("inbound program map {} is not one of the node's", bpf_map__name(map)));
    if (int err = bpf_map__reuse_fd(map, bpf_map__fd(nodeMap)); err != 0) {
      return failErrno(fmt::format("reuse map {} for the pod's inbound program", bpf_map__name(map)), libbpfErrno(err));
    }
  }
  if (int err = sluice_inbound__load(inbound.get()); err != 0) {
    return failErrno("load the pod's inbound program (the verifier log is above)", libbpfErrno(err));
  }
  return use(inbound->progs.sluice_pod_sk_lookup);
}

Result<UniqueFd> CaptureDatapath::podInboundProgram(uint64_t netnsCookie) const {
  std::string pin = skLookupPin(netnsCookie);
  UniqueFd link(bpf_obj_get(pin.c_str()));
  if (!link) return failErrno("open pinned link " + pin);
  bpf_link_info info{};
  uint32_t length = sizeof(info);
  if (bpf_obj_get_info_by_fd(link.get(), &info, &length) != 0) return failErrno("inspect " + pin);
  UniqueFd program(bpf_prog_get_fd_by_id(info.prog_id));
  if (!program) return failErrno(fmt::format("open program {} of {}", info.prog_id, pin));
  return program;
}

Status CaptureDatapath::setRedirect(uint64_t netnsCookie, bool on) {
  auto current = podConfig(netnsCookie);
  if (!current) return fail(std::move(current.error()));
  if (!*current) return fail(fmt::format("pod with netns cookie {} is not installed", netnsCookie));
  sluice_pod pod = **current;
  pod.flags = on ? (pod.flags | SLUICE_POD_REDIRECT) : (pod.flags & ~SLUICE_POD_REDIRECT);
  if (int err = bpf_map__update_elem(skel_->maps.sluice_pods, &netnsCookie, sizeof(netnsCookie), &pod,
                                     sizeof(pod), BPF_EXIST);
      err != 0) {
    return failErrno("switch redirection", libbpfErrno(err));
  }
  return {};
}

Status CaptureDatapath::setInboundListener(uint64_t netnsCookie, int family, int listenerFd) {
  sluice_listener_key key{};
  key.netns_cookie = netnsCookie;
  key.family = static_cast<uint32_t>(family);
  uint64_t value = static_cast<uint64_t>(listenerFd);
  if (int err = bpf_map__update_elem(skel_->maps.sluice_listeners, &key, sizeof(key), &value, sizeof(value),
                                     BPF_ANY);
      err != 0) {
    return failErrno("place the tunnel's inbound listener in the socket map", libbpfErrno(err));
  }
  return {};
}

void CaptureDatapath::removeInboundListeners(uint64_t netnsCookie) {
  for (uint32_t family : {2u, 10u}) {
    sluice_listener_key key{};
    key.netns_cookie = netnsCookie;
    key.family = family;
    bpf_map__delete_elem(skel_->maps.sluice_listeners, &key, sizeof(key), 0);
  }
}

Status CaptureDatapath::closePod(uint64_t netnsCookie) {
  removeInboundListeners(netnsCookie);
  return setRedirect(netnsCookie, true);
}

Result<bool> CaptureDatapath::namespaceGone(uint64_t netnsCookie) {
  int fd = -1;
  LinkPtr opened;
  if (auto owned = podLinks_.find(netnsCookie); owned != podLinks_.end()) {
    fd = bpf_link__fd(owned->second.get());
  } else {
    std::string pin = skLookupPin(netnsCookie);
    if (::access(pin.c_str(), F_OK) != 0) return true;
    opened.reset(bpf_link__open(pin.c_str()));
    if (!opened) return failErrno("open pinned link " + pin);
    fd = bpf_link__fd(opened.get());
  }
  bpf_link_info info{};
  uint32_t length = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &length) != 0) return failErrno("inspect the pod's sk_lookup link");
  return info.netns.netns_ino == 0;
}

Status CaptureDatapath::removePod(uint64_t netnsCookie) {
  Status first;
  auto note = [&first](Status s) {
    if (!s && first) first = std::move(s);
  };
  auto config = podConfig(netnsCookie);
  // Detach inbound capture first, then outbound; the pod is gone from the maps last.
  // The link stays attached while any descriptor of it is open (ours, for one) even once
  // unpinned: detach it explicitly, then unpin, then close ours.
  std::string pin = skLookupPin(netnsCookie);
  auto owned = podLinks_.find(netnsCookie);
  LinkPtr link;
  if (owned != podLinks_.end()) {
    link = std::move(owned->second);
    podLinks_.erase(owned);
  } else if (::access(pin.c_str(), F_OK) == 0) {
    link.reset(bpf_link__open(pin.c_str()));
    if (!link) note(failErrno("open pinned link " + pin));
  }
  if (link) {
    if (int err = bpf_link__detach(link.get()); err != 0) note(failErrno("detach sk_lookup", libbpfErrno(err)));
  }
  if (::access(pin.c_str(), F_OK) == 0 && ::unlink(pin.c_str()) != 0) note(failErrno("unpin " + pin));
  removeInboundListeners(netnsCookie);
  // Excluded CIDRs of this pod: walk the trie's keys.
  std::vector<sluice_cidr_key> cidrs;
  sluice_cidr_key key{}, next{};
  const void* prev = nullptr;
  while (bpf_map__get_next_key(skel_->maps.sluice_excl_cidrs, prev, &next, sizeof(next)) == 0) {
    if (next.netns_cookie == netnsCookie) cidrs.push_back(next);
    key = next;
    prev = &key;
  }
  for (auto& cidr : cidrs) bpf_map__delete_elem(skel_->maps.sluice_excl_cidrs, &cidr, sizeof(cidr), 0);
  bpf_map__delete_elem(skel_->maps.sluice_pods, &netnsCookie, sizeof(netnsCookie), 0);
  bpf_map__delete_elem(skel_->maps.sluice_counters, &netnsCookie, sizeof(netnsCookie), 0);
  return first;
}

Result<std::optional<sluice_pod>> CaptureDatapath::podConfig(uint64_t netnsCookie) const {
  sluice_pod pod{};
  int err = bpf_map__lookup_elem(skel_->maps.sluice_pods, &netnsCookie, sizeof(netnsCookie), &pod, sizeof(pod), 0);
  if (err == 0) return std::optional<sluice_pod>(pod);
  if (libbpfErrno(err) == ENOENT) return std::optional<sluice_pod>();
  return failErrno("read pod config", libbpfErrno(err));
}

Result<sluice_counters> CaptureDatapath::counters(uint64_t netnsCookie) const {
  std::vector<sluice_counters> perCpu(static_cast<size_t>(libbpf_num_possible_cpus()));
  int err = bpf_map__lookup_elem(skel_->maps.sluice_counters, &netnsCookie, sizeof(netnsCookie), perCpu.data(),
                                 perCpu.size() * sizeof(sluice_counters), 0);
  if (err != 0) return failErrno("read pod counters", libbpfErrno(err));
  sluice_counters sum{};
  for (const auto& cpu : perCpu) {
    for (int i = 0; i < SLUICE_CTR_MAX; ++i) sum.value[i] += cpu.value[i];
  }
  return sum;
}

std::vector<uint64_t> CaptureDatapath::installedPods() const {
  std::vector<uint64_t> cookies;
  uint64_t key = 0, next = 0;
  const void* prev = nullptr;
  while (bpf_map__get_next_key(skel_->maps.sluice_pods, prev, &next, sizeof(next)) == 0) {
    cookies.push_back(next);
    key = next;
    prev = &key;
  }
  return cookies;
}

void CaptureDatapath::setTrace(bool enabled) {
  uint32_t zero = 0;
  sluice_settings settings{};
  settings.trace_enabled = enabled ? 1 : 0;
  bpf_map__update_elem(skel_->maps.sluice_settings, &zero, sizeof(zero), &settings, sizeof(settings), BPF_ANY);
}

int CaptureDatapath::traceRingFd() const { return bpf_map__fd(skel_->maps.sluice_trace); }

std::vector<MapFill> CaptureDatapath::mapFill() const {
  std::vector<MapFill> out;
  bpf_map* map;
  bpf_object__for_each_map(map, skel_->obj) {
    if (bpf_map__is_internal(map)) continue;
    MapFill fill{bpf_map__name(map), bpf_map__max_entries(map), 0};
    auto type = bpf_map__type(map);
    if (type == BPF_MAP_TYPE_ARRAY) {
      fill.entries = fill.maxEntries;
    } else if (type != BPF_MAP_TYPE_RINGBUF) {
      std::vector<uint8_t> key(bpf_map__key_size(map)), next(bpf_map__key_size(map));
      const void* prev = nullptr;
      while (bpf_map__get_next_key(map, prev, next.data(), next.size()) == 0) {
        ++fill.entries;
        key = next;
        prev = key.data();
      }
    }
    out.push_back(fill);
  }
  return out;
}

std::vector<AttachPoint> CaptureDatapath::attachPoints() const {
  std::vector<AttachPoint> out;
  for (const auto& program : kCgroupPrograms) {
    out.push_back({bpf_program__name(program.get(skel_)), options_.cgroupPath, linksDir() + "/" + program.pin});
  }
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(linksDir() + "/sk_lookup", ec)) {
    out.push_back({"sluice_pod_sk_lookup", "netns " + entry.path().filename().string(), entry.path().string()});
  }
  return out;
}

Status CaptureDatapath::uninstall() {
  std::error_code ec;
  fs::remove_all(options_.pinDir + "/v1", ec);
  if (ec) return fail(fmt::format("remove pins in {}: {}", options_.pinDir, ec.message()));
  return {};
}

}  // namespace sluice::agent
