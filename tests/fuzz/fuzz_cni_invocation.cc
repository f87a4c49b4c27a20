// Fuzz: sluice-cni's parsing of the network configuration a runtime feeds on stdin (hostile
// input: any node user able to write a netconf). Must never crash, hang or leak.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "cni/cni_invocation.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  for (const char* command : {"ADD", "DEL", "CHECK"}) {
    std::map<std::string, std::string> env = {{"CNI_COMMAND", command}, {"CNI_CONTAINERID", "c"},
                                              {"CNI_NETNS", "/run/netns/x"}, {"CNI_IFNAME", "eth0"},
                                              {"CNI_ARGS", std::string(text.substr(0, 64))}};
    auto inv = sluice::cni::parseInvocation(env, text);
    if (inv) (void)sluice::cni::agentRequest(*inv).dump();
  }
  return 0;
}
