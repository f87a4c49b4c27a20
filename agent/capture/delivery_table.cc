#include "capture/delivery_table.h"

#include <bpf/bpf.h>

#include <cstring>

#include "capture/pod_capture_plan.h"
#include "sluice_capture.h"

namespace sluice::agent {
namespace {

// The key as sk_lookup builds it: the address in the kernel's form (addressBytes: IPv4 as
// ::ffff:a.b.c.d), ports in host order.
Result<sluice_delivery_key> keyFor(uint64_t netnsCookie, const SocketAddress& source, uint16_t dstPort) {
  SLUICE_TRY_ASSIGN(address, addressBytes(source.ip()));
  sluice_delivery_key key{};
  key.netns_cookie = netnsCookie;
  std::memcpy(key.src, address.data(), sizeof(key.src));
  key.src_port = source.port();
  key.dst_port = dstPort;
  return key;
}

}  // namespace

Result<std::shared_ptr<const DeliveryTable>> DeliveryTable::open(const std::string& pinDir) {
  std::string path = pinDir + "/v1/maps/sluice_deliveries";
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) return failErrno("open " + path + " (is the node agent running, and as new as this tunnel?)");
  return std::shared_ptr<const DeliveryTable>(new DeliveryTable(UniqueFd(fd)));  // (private constructor)
}

Result<std::shared_ptr<void>> DeliveryTable::add(uint64_t netnsCookie, const SocketAddress& source, uint16_t dstPort) const {
  SLUICE_TRY_ASSIGN(key, keyFor(netnsCookie, source, dstPort));
  uint8_t one = 1;
  // Never over another registration: the same key is a live delivery from that address to
  // that port (the caller takes another port; overwriting would let the two share one entry).
  if (bpf_map_update_elem(fd_.get(), &key, &one, BPF_NOEXIST) != 0) {
    int err = errno;
    return failErrno(err == EEXIST ? "register the delivery: " + source.toString() + " already delivers to port " +
                                         std::to_string(dstPort)
                                   : std::string("register the delivery"),
                     err);
  }
  // Removes the entry when the last holder lets go; keeps the table open until then.
  struct Registration {
    std::shared_ptr<const DeliveryTable> table;
    sluice_delivery_key key;
    ~Registration() { bpf_map_delete_elem(table->fd_.get(), &key); }
  };
  return std::static_pointer_cast<void>(std::make_shared<Registration>(shared_from_this(), key));
}

}  // namespace sluice::agent
