// Backup files (storage/backup_file.h): the stream's body (snapshot, padding tail) and SHA-256 are accepted whole, and any damage or truncation is refused.
#include "storage/backup_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "fsm/kv_state_machine.h"

namespace ckv::storage {
namespace {

class BackupFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ckv_backup_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    // A real payload: a state machine with some keys.
    fsm::KvStateMachine sm;
    for (uint64_t i = 1; i <= 50; ++i) {
      fsm::Command c;
      mvcc::PutRequest p;
      p.key = "k" + std::to_string(i);
      p.value = std::string(i, 'v');
      c.request = p;
      ASSERT_TRUE(sm.apply(i, c).status.is_ok());
    }
    const std::string payload = sm.encode_payload();
    auto f = write_snapshot_file_at((dir_ / "snap").string(), 50, 3, raft::Membership{{{1, raft::MemberRole::kVoter, "a"}}},
                                    [&](const PayloadSink& sink) { return sink(payload); });
    ASSERT_TRUE(f.is_ok()) << f.status().to_string();
    snap_ = read((dir_ / "snap").string());
    // What the stream sends (etcd/backup_stream.h): file, padding tail, SHA-256 of both.
    body_ = snap_ + backup_tail(snap_.size());
    Sha256 sha;
    sha.update(body_);
    const auto digest = sha.finish();
    backup_ = body_ + std::string(reinterpret_cast<const char*>(digest.data()), digest.size());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static std::string read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  std::string put(const std::string& name, const std::string& bytes) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }

  std::filesystem::path dir_;
  std::string snap_, body_, backup_;
};

TEST_F(BackupFileTest, TheBodyIsAMultipleOf512AsEtcdctlRequires) {
  EXPECT_EQ(body_.size() % kBackupAlignBytes, 0u);
  EXPECT_EQ(backup_.size() % kBackupAlignBytes, kSha256Bytes);
  for (uint64_t n : {0u, 1u, 495u, 496u, 497u, 512u, 100000u}) {
    EXPECT_EQ((n + backup_tail(n).size()) % kBackupAlignBytes, 0u) << n;
    EXPECT_GE(backup_tail(n).size(), kBackupTailBytes);
  }
}

TEST_F(BackupFileTest, AStreamedBackupAndABareSnapshotFileAreBothAccepted) {
  auto streamed = read_backup_file(put("streamed", backup_));
  ASSERT_TRUE(streamed.is_ok()) << streamed.status().to_string();
  EXPECT_TRUE(streamed.value().had_sha256);
  EXPECT_EQ(streamed.value().snapshot.meta.index, 50u);
  EXPECT_EQ(streamed.value().file_bytes, backup_.size());
  auto bare = read_backup_file(put("bare", snap_));
  ASSERT_TRUE(bare.is_ok()) << bare.status().to_string();
  EXPECT_FALSE(bare.value().had_sha256);
  EXPECT_EQ(bare.value().snapshot.payload, streamed.value().snapshot.payload);
  EXPECT_EQ(bare.value().crc32c, streamed.value().crc32c);
}

TEST_F(BackupFileTest, EveryTruncationIsRefused) {
  for (size_t n = 0; n < backup_.size(); n += (n < 600 || backup_.size() - n < 600) ? 1 : 97) {
    auto r = read_backup_file(put("cut", backup_.substr(0, n)));
    // A cut exactly at the end of the bare snapshot is the bare snapshot: fine.
    if (n == snap_.size()) {
      EXPECT_TRUE(r.is_ok());
      continue;
    }
    ASSERT_FALSE(r.is_ok()) << "accepted a backup cut to " << n << " of " << backup_.size() << " bytes";
    EXPECT_EQ(r.status().code(), n == 0 ? StatusCode::kCorrupt : StatusCode::kCorrupt);
  }
}

TEST_F(BackupFileTest, EveryFlippedByteIsRefused) {
  for (size_t i = 0; i < backup_.size(); i += (i < 64 || backup_.size() - i < 600) ? 1 : 13) {
    std::string bad = backup_;
    bad[i] = static_cast<char>(bad[i] ^ 0x20);
    auto r = read_backup_file(put("flipped", bad));
    ASSERT_FALSE(r.is_ok()) << "accepted a backup with byte " << i << " flipped";
    EXPECT_EQ(r.status().code(), StatusCode::kCorrupt);
    EXPECT_NE(r.status().message().find("flipped"), std::string::npos) << r.status().message();
  }
}

}  // namespace
}  // namespace ckv::storage
