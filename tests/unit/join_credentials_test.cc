// Unit tests for src/http/join_credentials.h: the -join-auth-file's first line as HTTP Basic, and bad files refused.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "http/join_credentials.h"

namespace ckv::http {
namespace {

class JoinCredentialsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ckv-join-creds-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string file(const std::string& name, const std::string& text, mode_t mode = 0600) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << text;
    chmod(path.c_str(), mode);
    return path;
  }

  std::string dir_;
};

TEST_F(JoinCredentialsTest, FirstLineBecomesBasic) {
  bool others = true;
  // base64("root:pw") = cm9vdDpwdw==; only the first line counts, CRLF or LF.
  EXPECT_EQ(join_authorization_from_file(file("a", "root:pw\nignored\n"), others).value(), "Basic cm9vdDpwdw==");
  EXPECT_FALSE(others);
  EXPECT_EQ(join_authorization_from_file(file("b", "root:pw\r\n"), others).value(), "Basic cm9vdDpwdw==");
  EXPECT_EQ(join_authorization_from_file(file("c", "root:pw"), others).value(), "Basic cm9vdDpwdw==");
  // A password may hold colons: only the first separates the user.
  EXPECT_EQ(join_authorization_from_file(file("d", "root:a:b\n"), others).value(), "Basic cm9vdDphOmI=");
}

TEST_F(JoinCredentialsTest, SaysWhenOthersCanReadTheFile) {
  bool others = false;
  ASSERT_TRUE(join_authorization_from_file(file("a", "root:pw\n", 0644), others).is_ok());
  EXPECT_TRUE(others);
  ASSERT_TRUE(join_authorization_from_file(file("b", "root:pw\n", 0640), others).is_ok());
  EXPECT_TRUE(others);
}

TEST_F(JoinCredentialsTest, RefusesBadFilesNamingThem) {
  bool others = false;
  auto missing = join_authorization_from_file(dir_ + "/none", others);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), "-join-auth-file " + dir_ + "/none: cannot be read");
  EXPECT_EQ(join_authorization_from_file(file("a", "root\n"), others).status().message(),
            "-join-auth-file " + dir_ + "/a: the first line is not user:password");
  EXPECT_EQ(join_authorization_from_file(file("b", "\nroot:pw\n"), others).status().code(), StatusCode::kInvalid);
  EXPECT_EQ(join_authorization_from_file(file("c", ":pw\n"), others).status().message(),
            "-join-auth-file " + dir_ + "/c: the user name is empty");
  EXPECT_EQ(join_authorization_from_file(file("d", "root:" + std::string(kMaxJoinAuthFileBytes, 'x')), others)
                .status()
                .code(),
            StatusCode::kInvalid);
  EXPECT_EQ(join_authorization_from_file(dir_, others).status().message(),
            "-join-auth-file " + dir_ + ": not a regular file");
}

}  // namespace
}  // namespace ckv::http
