// etcd's gateway form of Maintenance.Snapshot: one JSON line per chunk of the backup (see etcd_gateway.h).
#include <string>
#include <string_view>

#include "common/base64.h"
#include "http/etcd_gateway.h"

namespace ckv::http {

std::string gateway_snapshot_line(std::string_view blob, uint64_t remaining_bytes) {
  std::string line = R"({"result":{)";
  if (remaining_bytes != 0) line += R"("remaining_bytes":")" + std::to_string(remaining_bytes) + R"(",)";
  line += R"("blob":")" + base64_encode(blob, Base64::kStandard) + "\"}}\n";
  return line;
}

}  // namespace ckv::http
