// The core's in-memory log (see raft_log.h).
#include "raft/raft_log.h"

#include "common/check.h"

namespace ckv::raft {

void RaftLog::reset(Index offset, Term offset_term, std::vector<Entry> entries) {
  for (size_t k = 0; k < entries.size(); ++k) {
    KV_CHECK(entries[k].index == offset + 1 + k, "log not contiguous: entry %zu has index %llu, offset %llu",
             k, static_cast<unsigned long long>(entries[k].index),
             static_cast<unsigned long long>(offset));
  }
  offset_ = offset;
  offset_term_ = offset_term;
  entries_ = std::move(entries);
}

Term RaftLog::term_at(Index i) const {
  if (i == offset_) return offset_term_;
  if (i < offset_ || i > last_index()) return 0;
  return entries_[i - offset_ - 1].term;
}

bool RaftLog::is_up_to_date(Index index, Term term) const {
  const Term my_term = last_term();
  return term > my_term || (term == my_term && index >= last_index());
}

const Entry& RaftLog::at(Index i) const {
  KV_CHECK(i > offset_ && i <= last_index(), "entry %llu outside (%llu, %llu]",
           static_cast<unsigned long long>(i), static_cast<unsigned long long>(offset_),
           static_cast<unsigned long long>(last_index()));
  return entries_[i - offset_ - 1];
}

void RaftLog::append(Entry e) {
  KV_CHECK(e.index == last_index() + 1, "append of %llu after %llu",
           static_cast<unsigned long long>(e.index), static_cast<unsigned long long>(last_index()));
  KV_CHECK(e.term >= last_term(), "append of term %llu after term %llu",
           static_cast<unsigned long long>(e.term), static_cast<unsigned long long>(last_term()));
  entries_.push_back(std::move(e));
}

void RaftLog::truncate_from(Index i) {
  KV_CHECK(i > offset_, "truncate at %llu at or below offset %llu", static_cast<unsigned long long>(i),
           static_cast<unsigned long long>(offset_));
  if (i > last_index()) return;
  entries_.resize(i - offset_ - 1);
}

void RaftLog::compact_to(Index i) {
  KV_CHECK(i > offset_ && i <= last_index(), "compact to %llu outside (%llu, %llu]",
           static_cast<unsigned long long>(i), static_cast<unsigned long long>(offset_),
           static_cast<unsigned long long>(last_index()));
  offset_term_ = term_at(i);
  entries_.erase(entries_.begin(), entries_.begin() + static_cast<std::ptrdiff_t>(i - offset_));
  offset_ = i;
}

std::vector<Entry> RaftLog::slice(Index lo, Index hi, uint64_t max_bytes, uint64_t max_entries) const {
  std::vector<Entry> out;
  if (hi > last_index() + 1) hi = last_index() + 1;
  KV_CHECK(lo > offset_, "slice from %llu at or below offset %llu", static_cast<unsigned long long>(lo),
           static_cast<unsigned long long>(offset_));
  uint64_t bytes = 0;
  for (Index i = lo; i < hi && out.size() < max_entries; ++i) {
    const Entry& e = entries_[i - offset_ - 1];
    bytes += e.data.size();
    if (!out.empty() && bytes > max_bytes) break;
    out.push_back(e);
  }
  return out;
}

Index RaftLog::last_index_with_term_at_most(Term t, Index i) const {
  if (i > last_index()) i = last_index();
  while (i > offset_ && term_at(i) > t) --i;
  // At or below the offset terms may be unknown; the answer stays there and
  // the leader then falls back to a snapshot, which is always safe.
  return i;
}

}  // namespace ckv::raft
