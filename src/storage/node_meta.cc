// Reading and writing the data dir's node_meta file (see node_meta.h).
#include "storage/node_meta.h"

#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/bytes.h"
#include "common/crc32c.h"
#include "storage/file_system.h"
#include "storage/snapshot_file.h"

namespace ckv::storage {

namespace {

constexpr char kMagic[] = "CKVMETA";
constexpr size_t kMagicLen = 7;
constexpr uint8_t kFormat = 1;
constexpr size_t kIncarnationBytes = 16;
// node_meta holds a name and 32 hex chars; anything bigger is not ours.
constexpr size_t kMaxNodeMetaBytes = 64 << 10;
constexpr size_t kMaxNameBytes = 16 << 10;

Status corrupt(const std::string& path, const std::string& what) {
  return Status(StatusCode::kCorrupt, path + " is damaged: " + what);
}

}  // namespace

bool valid_incarnation(const std::string& s) {
  if (s.size() != 2 * kIncarnationBytes) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

Result<std::string> new_incarnation() {
  unsigned char raw[kIncarnationBytes];
  size_t got = 0;
  while (got < sizeof raw) {
    const ssize_t n = ::getrandom(raw + got, sizeof raw - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status(StatusCode::kIo, std::string("getrandom: ") + std::strerror(errno));
    got += static_cast<size_t>(n);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : raw) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0xf]);
  }
  return out;
}

Result<std::optional<NodeMeta>> read_node_meta(const std::string& dir) {
  const std::string path = dir + "/" + kNodeMetaFileName;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<NodeMeta>();
    return io_error(path, "open");
  }
  std::string data;
  Status s = read_all(fd, path, data, kMaxNodeMetaBytes);
  ::close(fd);
  if (!s.is_ok()) return s;
  if (data.size() > kMaxNodeMetaBytes) {
    return corrupt(path, "larger than " + std::to_string(kMaxNodeMetaBytes) + " bytes");
  }
  ByteReader r(data);
  std::string magic;
  uint8_t format = 0;
  uint32_t crc = 0;
  if (!r.bytes(kMagicLen, magic) || magic != std::string_view(kMagic, kMagicLen)) {
    return corrupt(path, "not a node_meta file (bad magic or empty)");
  }
  if (!r.u8(format) || format != kFormat) return corrupt(path, "unknown format " + std::to_string(format));
  if (!r.u32le(crc)) return corrupt(path, "cut short");
  if (crc32c(r.rest()) != crc) return corrupt(path, "checksum mismatch");
  NodeMeta meta;
  if (!r.string32(meta.name, kMaxNameBytes) || !r.string32(meta.incarnation, 2 * kIncarnationBytes) || !r.at_end()) {
    return corrupt(path, "malformed body");
  }
  if (!valid_incarnation(meta.incarnation)) return corrupt(path, "incarnation is not 32 lowercase hex characters");
  return std::optional<NodeMeta>(std::move(meta));
}

Status write_file_atomically(const std::string& dir, const std::string& name, std::string_view data) {
  return write_file_atomically(posix_file_system(), dir, name, data);
}

Status write_node_meta(const std::string& dir, const NodeMeta& meta) {
  std::string body;
  put_string32(body, meta.name);
  put_string32(body, meta.incarnation);
  std::string data(kMagic, kMagicLen);
  put_u8(data, kFormat);
  put_u32le(data, crc32c(body));
  data += body;
  return write_file_atomically(dir, kNodeMetaFileName, data);
}

}  // namespace ckv::storage
