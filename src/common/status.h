// Status and Result<T>: how expected failures travel between modules (never exceptions).
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace ckv {

// Each code maps to exactly one HTTP status in src/http (see DESIGN.md).
enum class StatusCode : unsigned char {
  kOk = 0,
  kInvalid,      // bad input from a client or a flag
  kNotFound,     // key or file absent
  kNotLeader,    // this node cannot do it; the leader can
  kUnavailable,  // no leader / no quorum right now; retry later
  kTimeout,      // gave up waiting; the outcome may still happen
  kConflict,     // e.g. joining with an id that belongs to another address
  kTooLarge,     // request or value over a limit
  kCorrupt,      // stored data failed a check
  kIo,           // the operating system refused
  kNoSpace,      // the disk is full (ENOSPC): writes are refused until space returns; reads still work
  kUnauthenticated,   // no credentials, or bad ones (auth enabled; HTTP 401)
  kPermissionDenied,  // the caller's roles do not allow it (HTTP 403)
};

const char* to_string(StatusCode c);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status ok() { return Status(); }

  bool is_ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string to_string() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// Either a value or a non-ok Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status s) : v_(std::move(s)) {}     // NOLINT(google-explicit-constructor)

  bool is_ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOkStatus;
    return is_ok() ? kOkStatus : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace ckv
