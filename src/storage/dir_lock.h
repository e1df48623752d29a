// An exclusive flock() on the data dir, held for the life of the process, so two kvnodes never share one dir.
//
// Two processes on one data dir (issue 7, item 8) both act as the same
// member: both may lead, both acknowledge writes, and the log they share
// ends up with gaps. LMDB's own lock allows several processes by design,
// so the data dir carries a lock of its own: <dir>/LOCK, locked with
// flock(LOCK_EX | LOCK_NB) and holding the holder's pid (for the error
// message only; the lock, not the pid, decides). The kernel drops the lock
// when the process exits, however it exits, so a crash never leaves a
// stale lock behind.
//
// Thread safety: a DirLock is owned by one object; nothing is shared.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"

namespace ckv::storage {

inline constexpr char kLockFileName[] = "LOCK";

class DirLock {
 public:
  // Locks dir (which must exist). kConflict naming the holder's pid when
  // another process (or another DirLock in this one) holds it.
  static Result<std::unique_ptr<DirLock>> acquire(const std::string& dir);
  ~DirLock();  // releases the lock
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;

 private:
  explicit DirLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace ckv::storage
