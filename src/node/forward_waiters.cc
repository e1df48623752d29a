// The origin tag codec and the forwarded writes' outcome rules (see forward_waiters.h).
#include "node/forward_waiters.h"

#include <utility>

#include "common/bytes.h"

namespace ckv::node {

std::string encode_tagged(const Origin& origin, std::string_view command) {
  std::string out;
  out.reserve(kOriginTagBytes + command.size());
  put_u8(out, kOriginTagFormat);
  put_u64le(out, origin.node);
  put_u64le(out, origin.boot);
  put_u64le(out, origin.seq);
  out.append(command);
  return out;
}

std::optional<Tagged> decode_tagged(std::string_view data) {
  if (data.size() < kOriginTagBytes || static_cast<uint8_t>(data[0]) != kOriginTagFormat) return std::nullopt;
  ByteReader r(data.substr(1, kOriginTagBytes - 1));
  Tagged t;
  if (!r.u64le(t.origin.node) || !r.u64le(t.origin.boot) || !r.u64le(t.origin.seq)) return std::nullopt;
  t.command = data.substr(kOriginTagBytes);
  return t;
}

bool ForwardWaiters::has_room(uint64_t bytes) const {
  if (waiters_.empty()) return true;
  return waiters_.size() < max_count_ && bytes_ + bytes <= max_bytes_;
}

void ForwardWaiters::add(uint64_t seq, uint64_t forward_id, uint64_t bytes, Clock::time_point deadline, Callback cb) {
  bytes_ += bytes;
  waiters_.emplace(seq, Waiter{forward_id, bytes, deadline, std::move(cb)});
  by_forward_id_.emplace(forward_id, seq);
}

ForwardWaiters::Callback ForwardWaiters::take(std::map<uint64_t, Waiter>::iterator it) {
  Callback cb = std::move(it->second.cb);
  bytes_ -= it->second.bytes;
  by_forward_id_.erase(it->second.forward_id);
  waiters_.erase(it);
  return cb;
}

void ForwardWaiters::applied(uint64_t seq, WriteResult result) {
  auto it = waiters_.find(seq);
  if (it == waiters_.end()) return;  // answered already (timed out); or applied twice, which nothing causes
  take(it)(std::move(result));
}

void ForwardWaiters::refused(uint64_t forward_id, const Status& why) {
  auto f = by_forward_id_.find(forward_id);
  if (f == by_forward_id_.end()) return;
  auto it = waiters_.find(f->second);
  if (it == waiters_.end()) return;
  take(it)(why);
}

void ForwardWaiters::snapshot_installed() {
  while (!waiters_.empty()) {
    take(waiters_.begin())(
        Status(StatusCode::kTimeout, "replaced by a snapshot from the leader; outcome unknown"));
  }
}

void ForwardWaiters::expire(Clock::time_point now, const std::string& why) {
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    if (it->second.deadline > now) {
      ++it;
      continue;
    }
    auto next = std::next(it);
    take(it)(Status(StatusCode::kTimeout, "the write was not committed in time; outcome unknown" + why));
    it = next;
  }
}

void ForwardWaiters::fail_all() {
  while (!waiters_.empty()) {
    take(waiters_.begin())(
        Status(StatusCode::kTimeout, "node stopped before the write was applied; outcome unknown"));
  }
}

}  // namespace ckv::node
