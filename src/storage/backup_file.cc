// Backup files: SHA-256 trailer and the checks of read_backup_file (see backup_file.h).
#include "storage/backup_file.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cstring>

#include "common/bytes.h"
#include "common/check.h"
#include "common/crc32c.h"

namespace ckv::storage {

struct Sha256::Ctx {
  EVP_MD_CTX* md = nullptr;
};

Sha256::Sha256() : ctx_(std::make_unique<Ctx>()) {
  ctx_->md = EVP_MD_CTX_new();
  KV_CHECK(ctx_->md != nullptr && EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr) == 1,
           "cannot initialise SHA-256");
}

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_->md); }

void Sha256::update(std::string_view data) {
  KV_CHECK(EVP_DigestUpdate(ctx_->md, data.data(), data.size()) == 1, "SHA-256 update failed");
}

std::array<unsigned char, kSha256Bytes> Sha256::finish() {
  std::array<unsigned char, kSha256Bytes> out{};
  unsigned int n = 0;
  KV_CHECK(EVP_DigestFinal_ex(ctx_->md, out.data(), &n) == 1 && n == kSha256Bytes, "SHA-256 final failed");
  return out;
}

std::string to_hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 0xf];
  }
  return out;
}

namespace {

constexpr char kTailMagic[] = "CKVBKUP1";
constexpr size_t kTailMagicBytes = 8;

}  // namespace

std::string backup_tail(uint64_t file_bytes) {
  const uint64_t body = (file_bytes + kBackupTailBytes + kBackupAlignBytes - 1) / kBackupAlignBytes * kBackupAlignBytes;
  std::string tail(static_cast<size_t>(body - file_bytes - kBackupTailBytes), '\0');
  tail.append(kTailMagic, kTailMagicBytes);
  put_u64le(tail, file_bytes);
  return tail;
}

namespace {

constexpr char kCurrentMagic[] = "CKVSNAP2";
constexpr size_t kMagicBytes = 8;
constexpr size_t kCrcBytes = 4;

Status corrupt(const std::string& path, const std::string& what) {
  return Status(StatusCode::kCorrupt, "backup " + path + " is not usable: " + what);
}

bool crc_matches(std::string_view data) {
  if (data.size() < kMagicBytes + kCrcBytes) return false;
  ByteReader tail(data.substr(data.size() - kCrcBytes));
  uint32_t want = 0;
  tail.u32le(want);
  return crc32c(0, data.data(), data.size() - kCrcBytes) == want;
}

}  // namespace

Result<LoadedBackup> read_backup_file(const std::string& path) {
  std::string data;
  if (Status s = read_whole_file(path, data); !s.is_ok()) return s;
  if (data.size() < kMagicBytes || data.compare(0, kMagicBytes, kCurrentMagic, kMagicBytes) != 0) {
    return corrupt(path, "it does not start like a consensuskv snapshot (CKVSNAP2); an etcd (bbolt) "
                         "snapshot cannot be restored into consensuskv");
  }
  LoadedBackup out;
  out.file_bytes = data.size();
  std::string_view snap(data);
  if (data.size() > kSha256Bytes) {
    Sha256 sha;
    sha.update(snap.substr(0, data.size() - kSha256Bytes));
    const auto digest = sha.finish();
    if (std::memcmp(digest.data(), data.data() + data.size() - kSha256Bytes, kSha256Bytes) == 0) {
      snap = snap.substr(0, data.size() - kSha256Bytes);
      out.had_sha256 = true;
    }
  }
  if (out.had_sha256) {
    // The body ends in the padding tail: the snapshot file is its first bytes.
    uint64_t file_bytes = 0;
    ByteReader len(snap.size() >= kBackupTailBytes ? snap.substr(snap.size() - 8) : std::string_view());
    const bool tailed = snap.size() >= kBackupTailBytes &&
                        snap.compare(snap.size() - kBackupTailBytes, kTailMagicBytes, kTailMagic, kTailMagicBytes) == 0 &&
                        len.u64le(file_bytes) && file_bytes <= snap.size() - kBackupTailBytes &&
                        backup_tail(file_bytes).size() == snap.size() - file_bytes &&
                        snap.substr(file_bytes) == backup_tail(file_bytes);
    if (!tailed) return corrupt(path, "its SHA-256 matches but the padding tail is malformed");
    snap = snap.substr(0, file_bytes);
  }
  if (!out.had_sha256 && !crc_matches(snap)) {
    return corrupt(path, "its SHA-256 trailer does not match (" + std::to_string(data.size()) +
                             " bytes: truncated or damaged)");
  }
  auto parsed = parse_snapshot_bytes(path, snap);
  if (!parsed.is_ok()) return corrupt(path, parsed.status().message());
  ByteReader tail(snap.substr(snap.size() - kCrcBytes));
  tail.u32le(out.crc32c);
  out.snapshot = std::move(parsed).value();
  return out;
}

}  // namespace ckv::storage
