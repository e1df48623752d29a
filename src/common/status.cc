// Names for status codes and a printable form of Status.
#include "common/status.h"

namespace ckv {

const char* to_string(StatusCode c) {
  switch (c) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kInvalid: return "invalid";
    case StatusCode::kNotFound: return "not found";
    case StatusCode::kNotLeader: return "not leader";
    case StatusCode::kUnavailable: return "unavailable";
    case StatusCode::kTimeout: return "timeout";
    case StatusCode::kConflict: return "conflict";
    case StatusCode::kTooLarge: return "too large";
    case StatusCode::kCorrupt: return "corrupt";
    case StatusCode::kIo: return "io error";
    case StatusCode::kNoSpace: return "no space left on device";
    case StatusCode::kUnauthenticated: return "unauthenticated";
    case StatusCode::kPermissionDenied: return "permission denied";
  }
  return "unknown";
}

std::string Status::to_string() const {
  if (is_ok()) return "ok";
  return std::string(ckv::to_string(code_)) + ": " + message_;
}

}  // namespace ckv
