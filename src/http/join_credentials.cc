// The credentials a joining node sends (see join_credentials.h).
#include "http/join_credentials.h"

#include <sys/stat.h>

#include <fstream>
#include <iterator>

#include "common/base64.h"

namespace ckv::http {

Result<std::string> join_authorization_from_file(const std::string& path, bool& readable_by_others) {
  const std::string what = "-join-auth-file " + path;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return Status(StatusCode::kNotFound, what + ": cannot be read");
  if (!S_ISREG(st.st_mode)) return Status(StatusCode::kInvalid, what + ": not a regular file");
  if (st.st_size > static_cast<off_t>(kMaxJoinAuthFileBytes)) {
    return Status(StatusCode::kInvalid, what + ": over " + std::to_string(kMaxJoinAuthFileBytes) + " bytes");
  }
  readable_by_others = (st.st_mode & (S_IRGRP | S_IROTH)) != 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status(StatusCode::kNotFound, what + ": cannot be read");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.size() > kMaxJoinAuthFileBytes) {
    return Status(StatusCode::kInvalid, what + ": over " + std::to_string(kMaxJoinAuthFileBytes) + " bytes");
  }
  std::string line = text.substr(0, text.find('\n'));
  if (!line.empty() && line.back() == '\r') line.pop_back();
  const size_t colon = line.find(':');
  if (colon == std::string::npos) return Status(StatusCode::kInvalid, what + ": the first line is not user:password");
  if (colon == 0) return Status(StatusCode::kInvalid, what + ": the user name is empty");
  return "Basic " + base64_encode(line, Base64::kStandard);
}

}  // namespace ckv::http
