// node_meta and the data dir lock: round trip, damage named, incarnations unique, one holder per dir.
#include "storage/node_meta.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "storage/dir_lock.h"

namespace ckv::storage {
namespace {

class NodeMetaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ckv_node_meta_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
};

TEST_F(NodeMetaTest, AbsentThenRoundTrip) {
  auto absent = read_node_meta(dir_.string());
  ASSERT_TRUE(absent.is_ok()) << absent.status().to_string();
  EXPECT_FALSE(absent.value().has_value());
  auto inc = new_incarnation();
  ASSERT_TRUE(inc.is_ok());
  ASSERT_TRUE(write_node_meta(dir_.string(), NodeMeta{"n1", inc.value()}).is_ok());
  auto got = read_node_meta(dir_.string());
  ASSERT_TRUE(got.is_ok()) << got.status().to_string();
  ASSERT_TRUE(got.value().has_value());
  EXPECT_EQ(got.value()->name, "n1");
  EXPECT_EQ(got.value()->incarnation, inc.value());
  EXPECT_FALSE(std::filesystem::exists(dir_ / "node_meta.tmp"));
}

TEST_F(NodeMetaTest, IncarnationsAre32HexCharsAndDiffer) {
  auto a = new_incarnation();
  auto b = new_incarnation();
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  EXPECT_TRUE(valid_incarnation(a.value())) << a.value();
  EXPECT_NE(a.value(), b.value());
  EXPECT_FALSE(valid_incarnation("0123456789ABCDEF0123456789abcdef"));  // upper case
  EXPECT_FALSE(valid_incarnation("abc"));
}

// Every damaged form is kCorrupt naming the file, never a crash.
TEST_F(NodeMetaTest, DamageIsReportedNamingTheFile) {
  auto inc = new_incarnation();
  ASSERT_TRUE(write_node_meta(dir_.string(), NodeMeta{"n1", inc.value()}).is_ok());
  const auto path = dir_ / kNodeMetaFileName;
  std::string good;
  {
    std::ifstream in(path, std::ios::binary);
    good.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::vector<std::string> damaged = {"", good.substr(0, 5), good.substr(0, good.size() - 1), good + "x"};
  for (size_t i = 7; i < good.size(); ++i) {
    std::string flipped = good;
    flipped[i] ^= 0x20;
    damaged.push_back(flipped);
  }
  for (const std::string& bytes : damaged) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
    auto got = read_node_meta(dir_.string());
    ASSERT_FALSE(got.is_ok()) << "accepted " << bytes.size() << " bytes";
    EXPECT_EQ(got.status().code(), StatusCode::kCorrupt);
    EXPECT_NE(got.status().message().find(path.string()), std::string::npos) << got.status().message();
  }
}

// Issue 7 item 8: a second holder is refused, naming the first one's pid.
TEST_F(NodeMetaTest, DirLockAdmitsOneHolder) {
  auto first = DirLock::acquire(dir_.string());
  ASSERT_TRUE(first.is_ok()) << first.status().to_string();
  auto second = DirLock::acquire(dir_.string());
  ASSERT_FALSE(second.is_ok());
  EXPECT_EQ(second.status().code(), StatusCode::kConflict);
  EXPECT_NE(second.status().message().find("in use by another kvnode (pid " + std::to_string(::getpid()) + ")"),
            std::string::npos)
      << second.status().message();
  first.value().reset();
  auto third = DirLock::acquire(dir_.string());
  EXPECT_TRUE(third.is_ok()) << third.status().to_string();
}

}  // namespace
}  // namespace ckv::storage
