#include "sluice/common/error.h"

#include <cstring>

namespace sluice {

Error errnoError(std::string_view what, int code) {
  std::string message(what);
  message += ": ";
  message += std::strerror(code);
  return Error(code, std::move(message));
}

}  // namespace sluice
