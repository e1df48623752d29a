// The data dir's flock() (see dir_lock.h).
#include "storage/dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace ckv::storage {

namespace {

// A pid is at most 7 digits on Linux; the rest of the file is never ours.
constexpr size_t kMaxPidBytes = 32;

std::string read_holder_pid(int fd) {
  char buf[kMaxPidBytes + 1] = {};
  const ssize_t n = ::pread(fd, buf, kMaxPidBytes, 0);
  if (n <= 0) return "unknown";
  std::string s(buf, static_cast<size_t>(n));
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  for (char c : s) {
    if (c < '0' || c > '9') return "unknown";
  }
  return s.empty() ? "unknown" : s;
}

}  // namespace

Result<std::unique_ptr<DirLock>> DirLock::acquire(const std::string& dir) {
  const std::string path = dir + "/" + kLockFileName;
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Status(StatusCode::kIo, path + ": open: " + std::strerror(errno));
  int rc;
  do {
    rc = ::flock(fd, LOCK_EX | LOCK_NB);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    const int err = errno;
    if (err == EWOULDBLOCK) {
      const std::string pid = read_holder_pid(fd);
      ::close(fd);
      return Status(StatusCode::kConflict, "data dir " + dir + " is in use by another kvnode (pid " + pid +
                                               "); stop it first (see docs/operations.md, \"Data dir in use\")");
    }
    ::close(fd);
    return Status(StatusCode::kIo, path + ": flock: " + std::strerror(err));
  }
  // The pid is informational (for the message above); failing to write it
  // must not stop a node that holds the lock.
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) == 0) {
    (void)!::pwrite(fd, pid.data(), pid.size(), 0);
  }
  return std::unique_ptr<DirLock>(new DirLock(fd));
}

DirLock::~DirLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace ckv::storage
