// Formatting and storage of trace lines.
#include "sim_trace.h"

#include <cstdarg>
#include <cstdio>

namespace ckv::sim {

std::string fmt(const char* f, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

void Trace::log(uint64_t now_us, const char* fmt, ...) {
  if (!enabled()) return;
  char body[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(body, sizeof body, fmt, ap);
  va_end(ap);
  char line[600];
  std::snprintf(line, sizeof line, "%8llu.%03llu %s",
                static_cast<unsigned long long>(now_us / 1000),
                static_cast<unsigned long long>(now_us % 1000), body);
  if (echo_) std::puts(line);
  if (keep_ > 0) {
    tail_.emplace_back(line);
    if (tail_.size() > keep_) tail_.pop_front();
  }
}

std::string describe(const raft::Message& m) {
  using raft::MessageType;
  char buf[256];
  int n =
      std::snprintf(buf, sizeof buf, "%s n%llu->n%llu t%llu", raft::to_string(m.type),
                    static_cast<unsigned long long>(m.from), static_cast<unsigned long long>(m.to),
                    static_cast<unsigned long long>(m.term));
  auto u = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  switch (m.type) {
    case MessageType::kPreVote:
    case MessageType::kVote:
      std::snprintf(buf + n, sizeof buf - n, " last=%llu/%llu", u(m.log_index), u(m.log_term));
      break;
    case MessageType::kAppend:
      if (m.entries.empty()) {
        std::snprintf(buf + n, sizeof buf - n, " prev=%llu/%llu ents=[] commit=%llu",
                      u(m.log_index), u(m.log_term), u(m.commit));
      } else {
        std::snprintf(buf + n, sizeof buf - n,
                      " prev=%llu/%llu ents=[%llu..%llu] last_term=%llu commit=%llu",
                      u(m.log_index), u(m.log_term), u(m.entries.front().index),
                      u(m.entries.back().index), u(m.entries.back().term), u(m.commit));
      }
      break;
    case MessageType::kHeartbeat:
      std::snprintf(buf + n, sizeof buf - n, " commit=%llu ctx=%llu", u(m.commit), u(m.context));
      break;
    case MessageType::kPreVoteResp:
    case MessageType::kVoteResp:
      std::snprintf(buf + n, sizeof buf - n, " %s", m.reject ? "REJECT" : "grant");
      break;
    case MessageType::kAppendResp:
      std::snprintf(buf + n, sizeof buf - n, " %s index=%llu hint=%llu/%llu",
                    m.reject ? "REJECT" : "ok", u(m.index), u(m.hint_index), u(m.hint_term));
      break;
    case MessageType::kSnapshot:
      std::snprintf(buf + n, sizeof buf - n, " snap=%llu/%llu size=%llu off=%llu len=%llu%s",
                    u(m.snapshot.index), u(m.snapshot.term), u(m.snapshot.size_bytes), u(m.offset),
                    u(m.data_length), m.done ? " done" : "");
      break;
    case MessageType::kSnapshotResp:
      std::snprintf(buf + n, sizeof buf - n, " index=%llu off=%llu%s%s", u(m.index), u(m.offset),
                    m.done ? " done" : "", m.reject ? " REJECT" : "");
      break;
    case MessageType::kReadIndex:
    case MessageType::kReadIndexResp:
    case MessageType::kHeartbeatResp:
    case MessageType::kProp:
    case MessageType::kPropResp:
      std::snprintf(buf + n, sizeof buf - n, " ctx=%llu index=%llu%s", u(m.context), u(m.index),
                    m.reject ? " REJECT" : "");
      break;
    case MessageType::kTimeoutNow:
      break;
  }
  return buf;
}

}  // namespace ckv::sim
