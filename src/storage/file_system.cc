// The POSIX file system and the helpers built on any FileSystem (see file_system.h).
#include "storage/file_system.h"

#include <cerrno>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/snapshot_file.h"

namespace ckv::storage {

namespace {

class PosixFileSystem final : public FileSystem {
 public:
  Result<int> open(const std::string& path, OpenMode mode) override {
    int flags = O_CLOEXEC;
    switch (mode) {
      case OpenMode::kRead:
        flags |= O_RDONLY;
        break;
      case OpenMode::kReadWrite:
        flags |= O_RDWR;
        break;
      case OpenMode::kCreateNew:
        flags |= O_RDWR | O_CREAT | O_EXCL;
        break;
      case OpenMode::kCreateTrunc:
        flags |= O_WRONLY | O_CREAT | O_TRUNC;
        break;
    }
    const int fd = ::open(path.c_str(), flags, 0644);
    if (fd < 0) return io_error(path, mode == OpenMode::kCreateNew ? "create" : "open");
    return fd;
  }

  void close(int fd) override { ::close(fd); }

  Status pwrite(int fd, std::string_view data, uint64_t offset, const std::string& path,
                size_t* written) override {
    *written = 0;
    while (*written < data.size()) {
      const ssize_t n = ::pwrite(fd, data.data() + *written, data.size() - *written,
                                 static_cast<off_t>(offset + *written));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return io_error(path, "write");
      *written += static_cast<size_t>(n);
    }
    return Status::ok();
  }

  Result<size_t> pread(int fd, char* buf, size_t n, uint64_t offset,
                       const std::string& path) override {
    size_t done = 0;
    while (done < n) {
      const ssize_t r = ::pread(fd, buf + done, n - done, static_cast<off_t>(offset + done));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return io_error(path, "read");
      if (r == 0) break;
      done += static_cast<size_t>(r);
    }
    return done;
  }

  Status fdatasync(int fd, const std::string& path) override {
    if (::fdatasync(fd) != 0) return io_error(path, "fdatasync");
    return Status::ok();
  }

  Status fsync(int fd, const std::string& path) override {
    if (::fsync(fd) != 0) return io_error(path, "fsync");
    return Status::ok();
  }

  // Filesystems without fallocate get a sparse file of the same size,
  // which reads as zeros too.
  Status preallocate(int fd, uint64_t bytes, const std::string& path) override {
    if (::fallocate(fd, 0, 0, static_cast<off_t>(bytes)) == 0) return Status::ok();
    if (errno != EOPNOTSUPP && errno != ENOSYS) return io_error(path, "fallocate");
    if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0) return io_error(path, "ftruncate");
    return Status::ok();
  }

  void start_writeback(int fd, uint64_t offset, uint64_t bytes) override {
    // Failure changes nothing the caller relies on: the next fdatasync writes these pages anyway.
    (void)::sync_file_range(fd, static_cast<off_t>(offset), static_cast<off_t>(bytes),
                            SYNC_FILE_RANGE_WRITE);
  }

  Result<std::optional<uint64_t>> file_size(const std::string& path) override {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      if (errno == ENOENT) return std::optional<uint64_t>();
      return io_error(path, "stat");
    }
    return std::optional<uint64_t>(static_cast<uint64_t>(st.st_size));
  }

  Status create_dir(const std::string& path) override {
    if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) return io_error(path, "mkdir");
    return Status::ok();
  }

  Result<std::vector<std::string>> list_dir(const std::string& path) override {
    DIR* d = ::opendir(path.c_str());
    if (d == nullptr) return io_error(path, "opendir");
    std::vector<std::string> names;
    while (const dirent* ent = ::readdir(d)) {
      const std::string name = ent->d_name;
      if (name != "." && name != "..") names.push_back(name);
    }
    ::closedir(d);
    return names;
  }

  Status rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return io_error(to, "rename");
    return Status::ok();
  }

  Status unlink(const std::string& path) override {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return io_error(path, "unlink");
    return Status::ok();
  }

  Status sync_dir(const std::string& path) override { return storage::sync_dir(path); }
};

}  // namespace

FileSystem& posix_file_system() {
  static PosixFileSystem fs;
  return fs;
}

Result<std::string> read_whole_file(FileSystem& fs, const std::string& path, size_t max_bytes) {
  auto fd = fs.open(path, OpenMode::kRead);
  if (!fd.is_ok()) return fd.status();
  constexpr size_t kReadChunkBytes = size_t{1} << 16;
  std::string data;
  for (;;) {
    const size_t at = data.size();
    data.resize(at + kReadChunkBytes);
    auto n = fs.pread(fd.value(), data.data() + at, kReadChunkBytes, at, path);
    if (!n.is_ok()) {
      fs.close(fd.value());
      return n.status();
    }
    data.resize(at + n.value());
    if (n.value() < kReadChunkBytes || data.size() > max_bytes) break;
  }
  fs.close(fd.value());
  return data;
}

Status write_file_atomically(FileSystem& fs, const std::string& dir, const std::string& name,
                             std::string_view data) {
  const std::string path = dir + "/" + name;
  const std::string tmp = path + ".tmp";
  auto fd = fs.open(tmp, OpenMode::kCreateTrunc);
  if (!fd.is_ok()) return fd.status();
  size_t written = 0;
  Status s = fs.pwrite(fd.value(), data, 0, tmp, &written);
  if (s.is_ok()) s = fs.fsync(fd.value(), tmp);
  fs.close(fd.value());
  if (s.is_ok()) s = fs.rename(tmp, path);
  if (!s.is_ok()) {
    (void)fs.unlink(tmp);
    return s;
  }
  return fs.sync_dir(dir);
}

}  // namespace ckv::storage
