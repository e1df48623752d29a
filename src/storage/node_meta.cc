// Checksummed node metadata file (see node_meta.h): u8 format, name, incarnation, CRC-32C of what precedes.
#include "storage/node_meta.h"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <unistd.h>

#include "common/bytes.h"
#include "common/crc32c.h"

namespace ckv::storage {
namespace {

constexpr char kFileName[] = "node-meta";
constexpr char kTempName[] = "node-meta.tmp";
constexpr uint8_t kFormat = 1;
constexpr size_t kMaxFieldBytes = 4096;
constexpr size_t kMaxFileBytes = 1 + 2 * (4 + kMaxFieldBytes) + 4;

Status io_error(const std::string& path, const char* what) {
  return Status(StatusCode::kIo, path + ": " + what + ": " + std::strerror(errno));
}

Status write_all(int fd, const std::string& data, const std::string& path) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return io_error(path, "write failed");
    done += static_cast<size_t>(n);
  }
  return Status::ok();
}

}  // namespace

Result<std::optional<NodeMeta>> read_node_meta(const std::string& dir) {
  const std::string path = dir + "/" + kFileName;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<NodeMeta>();
    return io_error(path, "cannot open");
  }
  std::string data;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Status s = io_error(path, "read failed");
      ::close(fd);
      return s;
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
    if (data.size() > kMaxFileBytes) break;
  }
  ::close(fd);
  auto corrupt = [&](const char* why) {
    return Status(StatusCode::kCorrupt,
                  path + ": " + why +
                      " (restore the file from a backup of this data dir, "
                      "or remove the member and add it again with an empty data dir)");
  };
  if (data.size() < 4 || data.size() > kMaxFileBytes) return corrupt("wrong size");
  ByteReader crc_reader(std::string_view(data).substr(data.size() - 4));
  uint32_t crc = 0;
  (void)crc_reader.u32le(crc);
  const std::string_view body = std::string_view(data).substr(0, data.size() - 4);
  if (crc32c(body) != crc) return corrupt("checksum mismatch");
  ByteReader r(body);
  uint8_t format = 0;
  NodeMeta meta;
  if (!r.u8(format) || format != kFormat) return corrupt("unknown format");
  if (!r.string32(meta.name, kMaxFieldBytes) || !r.string32(meta.incarnation, kMaxFieldBytes) ||
      !r.at_end()) {
    return corrupt("malformed");
  }
  return std::optional<NodeMeta>(std::move(meta));
}

Status write_node_meta(const std::string& dir, const NodeMeta& meta) {
  std::string data;
  put_u8(data, kFormat);
  put_string32(data, meta.name);
  put_string32(data, meta.incarnation);
  put_u32le(data, crc32c(data));
  const std::string tmp = dir + "/" + kTempName;
  const std::string path = dir + "/" + kFileName;
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return io_error(tmp, "cannot create");
  Status s = write_all(fd, data, tmp);
  if (s.is_ok() && ::fsync(fd) != 0) s = io_error(tmp, "fsync failed");
  ::close(fd);
  if (!s.is_ok()) return s;
  // rename() is atomic; syncing the directory makes the new name durable.
  if (::rename(tmp.c_str(), path.c_str()) != 0) return io_error(path, "rename failed");
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return io_error(dir, "cannot open the data dir");
  const int rc = ::fsync(dfd);
  ::close(dfd);
  if (rc != 0) return io_error(dir, "fsync failed");
  return Status::ok();
}

}  // namespace ckv::storage
