// etcd's gateway form of Maintenance.Snapshot: one JSON line per chunk of the backup (see etcd_gateway.h).
#include <string>
#include <string_view>

#include "http/etcd_gateway.h"

namespace ckv::http {

namespace {

// Standard base64 with padding: protobuf's JSON mapping of bytes.
std::string base64(std::string_view in) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const uint32_t v = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8) |
                       static_cast<uint8_t>(in[i + 2]);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (const size_t rest = in.size() - i; rest > 0) {
    uint32_t v = static_cast<uint32_t>(static_cast<uint8_t>(in[i])) << 16;
    if (rest == 2) v |= static_cast<uint32_t>(static_cast<uint8_t>(in[i + 1])) << 8;
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

}  // namespace

std::string gateway_snapshot_line(std::string_view blob, uint64_t remaining_bytes) {
  std::string line = R"({"result":{)";
  if (remaining_bytes != 0) line += R"("remaining_bytes":")" + std::to_string(remaining_bytes) + R"(",)";
  line += R"("blob":")" + base64(blob) + "\"}}\n";
  return line;
}

}  // namespace ckv::http
