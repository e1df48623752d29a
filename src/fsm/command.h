// Client commands as they travel in the Raft log: encoding and decoding.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ckv::fsm {

enum class CommandType : uint8_t { kSet = 1, kDelete = 2 };

struct Command {
  CommandType type = CommandType::kSet;
  std::string key;
  std::string value;  // kSet only

  bool operator==(const Command&) const = default;
};

// [format u8][type u8][key length u32][key][value]; the value runs to the end.
std::string encode_command(const Command& c);
// nullopt on malformed input (the log's CRC makes that a programming error
// or a foreign entry, which the state machine skips with a log line).
std::optional<Command> decode_command(std::string_view data);

}  // namespace ckv::fsm
