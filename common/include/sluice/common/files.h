// Whole-file reads and atomic writes, for configuration, state and keys.
#pragma once

#include <string>
#include <string_view>

#include "sluice/common/error.h"

namespace sluice {

// Writes `content` to `path` atomically (temporary file "<path>.tmp" in the same folder, fsync,
// rename) with `mode`: a reader sees the old file or the whole new one, never half of it, and
// a private key is never readable by others, not even briefly.
Status writeFileAtomically(const std::string& path, std::string_view content, unsigned mode);

Result<std::string> readFile(const std::string& path);

}  // namespace sluice
