// Parsing and checking "host:port" addresses and URL query strings (no I/O, shared by kvnode and the HTTP layer).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace ckv::http {

struct HostPort {
  std::string host;  // without brackets for IPv6 literals
  uint16_t port = 0;
};

// Accepts "host:port" and "[v6]:port" with a port in 1..65535 and a non-empty
// host; nullopt otherwise. Only the syntax is checked, not whether it resolves.
std::optional<HostPort> parse_host_port(std::string_view s);

// Percent-decoding as in application/x-www-form-urlencoded ('+' is a space),
// which is what Go's URL.Query() does, so keys written for the reference
// decode the same here. nullopt on a malformed escape ("%4", "%zz").
std::optional<std::string> url_decode(std::string_view s);
std::string url_encode(std::string_view s);

// Splits a request target "/path?query" into its path and decoded parameters.
// The first occurrence of a parameter wins, like Go's Values.Get.
struct Target {
  std::string path;
  std::map<std::string, std::string> params;
};
std::optional<Target> parse_target(std::string_view target);

}  // namespace ckv::http
