// Fuzz: a pod's labels and annotations (written by whoever may create pods) turned into kernel
// capture configuration. Lines of the input become addresses and annotation values.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "capture/pod_capture_plan.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> lines;
  size_t start = 0;
  while (start <= text.size() && lines.size() < 8) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  lines.resize(8);
  using namespace sluice::agent;
  PodCaptureSpec spec{.addresses = {lines[0], lines[1]},
                      .labels = {{kDataplaneModeLabel, lines[2]}},
                      .annotations = {{kExcludeOutboundPorts, lines[3]},
                                      {kExcludeInboundPorts, lines[4]},
                                      {kExcludeOutboundRanges, lines[5]},
                                      {kCaptureAnnotation, lines[6].empty() ? "enabled" : lines[6]}}};
  (void)planPodCapture(spec);
  return 0;
}
