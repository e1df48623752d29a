// Command codec (see command.h).
#include "fsm/command.h"

#include "common/bytes.h"

namespace ckv::fsm {

namespace {
constexpr uint8_t kCommandFormat = 1;
}

std::string encode_command(const Command& c) {
  std::string out;
  out.reserve(6 + c.key.size() + c.value.size());
  put_u8(out, kCommandFormat);
  put_u8(out, static_cast<uint8_t>(c.type));
  put_u32le(out, static_cast<uint32_t>(c.key.size()));
  out += c.key;
  if (c.type == CommandType::kSet) out += c.value;
  return out;
}

std::optional<Command> decode_command(std::string_view data) {
  ByteReader r(data);
  uint8_t format = 0;
  uint8_t type = 0;
  uint32_t key_len = 0;
  Command c;
  if (!r.u8(format) || format != kCommandFormat || !r.u8(type) || !r.u32le(key_len) || !r.bytes(key_len, c.key)) {
    return std::nullopt;
  }
  if (type == static_cast<uint8_t>(CommandType::kSet)) {
    c.type = CommandType::kSet;
    c.value.assign(r.rest());
  } else if (type == static_cast<uint8_t>(CommandType::kDelete) && r.at_end()) {
    c.type = CommandType::kDelete;
  } else {
    return std::nullopt;
  }
  return c;
}

}  // namespace ckv::fsm
