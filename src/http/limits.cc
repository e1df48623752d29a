// How large a request body may be so that its log entry can always be replicated (see limits.h).
#include "http/limits.h"

#include <algorithm>
#include <string>

#include "fsm/command.h"
#include "raft/messages.h"
#include "transport/message_codec.h"

namespace ckv::http {

namespace {

// Bytes an Append message with one entry takes besides the entry's data,
// measured with the real encoder so a codec change cannot silently break the
// bound. Every field is fixed-width, so only the data length varies.
uint64_t append_overhead_bytes() {
  raft::Message m;
  m.type = raft::MessageType::kAppend;
  m.entries.push_back(raft::Entry{});
  return transport::encode_message(m).size();
}

// Bytes a /set's command takes besides its key and value: the envelope
// with the longest idempotency key, and the put's fixed fields.
uint64_t command_overhead_bytes() {
  fsm::Command c;
  c.request = mvcc::PutRequest{};
  c.idempotency_key.assign(fsm::kMaxIdempotencyKeyBytes, 'k');
  return fsm::encode_command(c).size();
}

}  // namespace

uint64_t max_replicable_body_bytes(uint64_t max_uncommitted_bytes) {
  const uint64_t frame_room = transport::kMaxFrameBytes - append_overhead_bytes();
  const uint64_t entry_room = std::min(frame_room, max_uncommitted_bytes);
  const uint64_t command_overhead = command_overhead_bytes();
  return entry_room > command_overhead ? entry_room - command_overhead : 0;
}

Status check_max_body_bytes(uint64_t max_body_bytes, uint64_t max_uncommitted_bytes) {
  if (max_body_bytes == 0) return Status(StatusCode::kInvalid, "-max-body-bytes must be positive");
  const uint64_t limit = max_replicable_body_bytes(max_uncommitted_bytes);
  if (max_body_bytes > limit) {
    return Status(StatusCode::kInvalid,
                  "-max-body-bytes=" + std::to_string(max_body_bytes) +
                      " is more than one Raft log entry can carry: at most " +
                      std::to_string(limit) + " bytes (a " +
                      std::to_string(transport::kMaxFrameBytes) + "-byte Raft frame and a " +
                      std::to_string(max_uncommitted_bytes) +
                      "-byte uncommitted-log limit, less the command and message encoding)");
  }
  return Status::ok();
}

}  // namespace ckv::http
