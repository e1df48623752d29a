// The file operations the WAL makes, as an interface: POSIX for kvnode, an in-memory crashable one for the simulator.
//
// Only what wal/ really calls is here: open, close, pread, pwrite,
// fdatasync/fsync, preallocate, start writeback, the size of a path, create a directory,
// list it, rename, unlink, and fsync a directory. One virtual call per
// system call: the WAL's hot path (one pwrite and one fdatasync per batch)
// costs two indirect calls and nothing per byte.
//
// Durability rules every implementation follows (the WAL's recovery relies
// on exactly these, and the simulator's MemFileSystem enforces them):
//  - file data written by pwrite survives a crash only once fdatasync (or
//    fsync) of that file returned OK; a crash may keep any part of what
//    was written since, or none;
//  - a create, rename or unlink in a directory survives a crash only once
//    sync_dir() of that directory returned OK;
//  - preallocate() extends the file (reads as zeros) like a write.
//
// Errors are Status values: kNoSpace for a full disk, kIo for the rest,
// with "path: what: reason" (storage/snapshot_file.h io_error). A handle
// (int) is valid until close(); it is never shared between threads.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace ckv::storage {

enum class OpenMode : uint8_t {
  kRead,         // existing file, read only
  kReadWrite,    // existing file, read and write
  kCreateNew,    // create; kIo if it exists (O_EXCL)
  kCreateTrunc,  // create or truncate to 0, write only
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;

  virtual Result<int> open(const std::string& path, OpenMode mode) = 0;
  virtual void close(int fd) = 0;
  // Writes all of data at offset (retrying short writes). *written is what
  // reached the file even when it fails (a partial write the caller may
  // have to undo).
  virtual Status pwrite(int fd, std::string_view data, uint64_t offset, const std::string& path,
                        size_t* written) = 0;
  // Reads up to n bytes at offset; fewer only at the end of the file.
  virtual Result<size_t> pread(int fd, char* buf, size_t n, uint64_t offset,
                               const std::string& path) = 0;
  virtual Status fdatasync(int fd, const std::string& path) = 0;
  // Like fdatasync, and the file's metadata too (a file about to be renamed).
  virtual Status fsync(int fd, const std::string& path) = 0;
  // Reserves [0, bytes) so that writes inside never allocate.
  virtual Status preallocate(int fd, uint64_t bytes, const std::string& path) = 0;
  // Starts writing [offset, offset + bytes) back to the disk without
  // waiting (sync_file_range's SYNC_FILE_RANGE_WRITE): a hint, which makes
  // nothing durable and may do nothing.
  virtual void start_writeback(int fd, uint64_t offset, uint64_t bytes) = 0;

  // The size of the file at path; nullopt when nothing is there.
  virtual Result<std::optional<uint64_t>> file_size(const std::string& path) = 0;
  // Creates a directory; OK when it already exists.
  virtual Status create_dir(const std::string& path) = 0;
  // Names in a directory (no "." or "..").
  virtual Result<std::vector<std::string>> list_dir(const std::string& path) = 0;
  virtual Status rename(const std::string& from, const std::string& to) = 0;
  // OK when nothing is there.
  virtual Status unlink(const std::string& path) = 0;
  // Makes creates, renames and unlinks in the directory durable.
  virtual Status sync_dir(const std::string& path) = 0;
};

// The real file system (one instance, stateless, thread safe).
FileSystem& posix_file_system();

// Reads a whole file; stops once it holds more than max_bytes (the caller checks).
Result<std::string> read_whole_file(FileSystem& fs, const std::string& path, size_t max_bytes);
// Replaces <dir>/<name> atomically: writes <name>.tmp, fsyncs it, renames it
// over <name>, fsyncs dir. A crash leaves the old or the new file, never a mix.
Status write_file_atomically(FileSystem& fs, const std::string& dir, const std::string& name,
                             std::string_view data);

}  // namespace ckv::storage
