// BackupStream: waits for Node::write_backup, then reads the file in chunks and appends its SHA-256 (see backup_stream.h).
#include "etcd/backup_stream.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <algorithm>
#include <future>
#include <thread>

namespace ckv::etcd {

namespace {
// How often a waiting call checks whether its client is still there.
constexpr auto kCancelPollInterval = std::chrono::milliseconds(100);
}  // namespace

Result<std::unique_ptr<BackupStream>> BackupStream::open(node::Node& node, int timeout_ms,
                                                         const std::function<bool()>& cancelled) {
  auto done = std::make_shared<std::promise<Result<node::BackupFile>>>();
  std::future<Result<node::BackupFile>> written = done->get_future();
  node.write_backup([done](Result<node::BackupFile> r) { done->set_value(std::move(r)); });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (written.wait_for(kCancelPollInterval) != std::future_status::ready) {
    if (std::chrono::steady_clock::now() >= deadline || (cancelled && cancelled())) {
      // The node finishes the file anyway; delete it when it does.
      std::thread([w = std::move(written)]() mutable {
        if (auto r = w.get(); r.is_ok()) ::unlink(r.value().path.c_str());
      }).detach();
      return Status(StatusCode::kTimeout, "the backup was not written in time");
    }
  }
  Result<node::BackupFile> file = written.get();
  if (!file.is_ok()) return file.status();
  return from_file(file.value());
}

Result<std::unique_ptr<BackupStream>> BackupStream::from_file(const node::BackupFile& file) {
  const int fd = ::open(file.path.c_str(), O_RDONLY | O_CLOEXEC);
  const int open_errno = errno;
  // Open or not, the name goes now: the open file lives until we close it.
  ::unlink(file.path.c_str());
  if (fd < 0) return Status(StatusCode::kIo, file.path + ": open: " + std::strerror(open_errno));
  return std::unique_ptr<BackupStream>(new BackupStream(fd, file));
}

BackupStream::BackupStream(int fd, node::BackupFile file) : fd_(fd), file_(std::move(file)) {
  struct stat st{};
  size_ = ::fstat(fd_, &st) == 0 ? static_cast<uint64_t>(st.st_size) : file_.size_bytes;
  tail_ = storage::backup_tail(size_);
}

BackupStream::~BackupStream() { ::close(fd_); }

Result<BackupStream::Piece> BackupStream::next() {
  if (done_) return Status(StatusCode::kInvalid, "backup stream already ended");
  if (sent_ >= size_ && !tail_sent_) {
    tail_sent_ = true;
    sha_.update(tail_);
    return Piece{tail_, 0, false};
  }
  if (sent_ >= size_) {
    done_ = true;
    const auto digest = sha_.finish();
    return Piece{std::string(reinterpret_cast<const char*>(digest.data()), digest.size()), 0, true};
  }
  std::string blob(static_cast<size_t>(std::min<uint64_t>(storage::kBackupChunkBytes, size_ - sent_)), '\0');
  size_t got = 0;
  while (got < blob.size()) {
    const ssize_t n = ::pread(fd_, blob.data() + got, blob.size() - got, static_cast<off_t>(sent_ + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status(StatusCode::kIo, file_.path + ": read: " + std::strerror(errno));
    if (n == 0) return Status(StatusCode::kIo, file_.path + ": ended early (at " + std::to_string(sent_ + got) + ")");
    got += static_cast<size_t>(n);
  }
  sent_ += got;
  sha_.update(blob);
  return Piece{std::move(blob), size_ - sent_ + tail_.size(), false};
}

}  // namespace ckv::etcd
