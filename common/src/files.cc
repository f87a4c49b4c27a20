#include "sluice/common/files.h"

#include <fcntl.h>
#include <cerrno>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace sluice {

Status writeFileAtomically(const std::string& path, std::string_view content, unsigned mode) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return failErrno("create " + tmp);
  bool ok = ::fchmod(fd, mode) == 0;
  for (size_t done = 0; ok && done < content.size();) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  int error = errno;  // before close and unlink can change it
  ::close(fd);
  if (!ok) {
    ::unlink(tmp.c_str());
    return failErrno("write " + path, error);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) return failErrno("rename " + path);
  return {};
}

Result<std::string> readFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return failErrno("read " + path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace sluice
