#include "capture/orig_dst_table.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <netinet/in.h>

#include <fmt/format.h>

#include <cstring>

#include "sluice_capture.h"

namespace sluice::agent {

Result<OrigDstTable> OrigDstTable::open(const std::string& pinDir) {
  std::string path = pinDir + "/v1/maps/sluice_conn_dst";
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) return failErrno("open " + path + " (is the node agent running?)");
  return OrigDstTable(UniqueFd(fd));
}

Result<SocketAddress> OrigDstTable::take(uint64_t netnsCookie, const SocketAddress& peer) const {
  sluice_conn_key key{};
  key.netns_cookie = netnsCookie;
  key.port = peer.port();
  key.family = static_cast<uint16_t>(peer.family());
  // An IPv4 connection accepted on a dual-stack socket shows a v4-mapped peer: it is IPv4.
  std::string ip = peer.ip();
  if (peer.family() == AF_INET6 && ip.rfind("::ffff:", 0) == 0 && ip.find('.') != std::string::npos) {
    key.family = AF_INET;
  }
  sluice_orig_dst value{};
  if (bpf_map_lookup_and_delete_elem(fd_.get(), &key, &value) != 0) {
    // LRU hash maps support lookup-and-delete only on newer kernels; fall back.
    if (bpf_map_lookup_elem(fd_.get(), &key, &value) != 0) {
      return failErrno(fmt::format("no original destination for {} in netns {}", peer.toString(), netnsCookie));
    }
    bpf_map_delete_elem(fd_.get(), &key);
  }
  char text[INET6_ADDRSTRLEN] = {};
  if (value.family == AF_INET) {
    in_addr v4;
    std::memcpy(&v4, value.addr + 12, 4);
    ::inet_ntop(AF_INET, &v4, text, sizeof(text));
  } else {
    ::inet_ntop(AF_INET6, value.addr, text, sizeof(text));
  }
  return SocketAddress::fromIp(text, value.port);
}

}  // namespace sluice::agent
