// What a peer message may claim: the limits and the stateless shape checks the core applies before acting on one.
//
// A peer is not trusted to be honest or bug-free (DESIGN.md: "the core may
// assert its own invariants, never a peer's honesty"). Every message passes
// check_message_shape() at the top of Raft::step(); the checks that need the
// core's own state (our log, commit index, a follower's progress) live in the
// handlers in raft.cc. A message that fails either is dropped and step()
// returns the reason, so the node can count and log it. A dropped message is
// always safe: Raft tolerates message loss.
//
// Without peer authentication (mutual TLS, a later issue) a well-formed lie
// from a member's id cannot be told from the truth; these checks make sure
// that no message, however forged, can crash a node, wrap a term, or make
// the core act on an index or term it could never have sent or stored.
#pragma once

#include <cstdint>

#include "raft/messages.h"
#include "raft/types.h"

namespace ckv::raft {

// Terms and indexes never get near 2^64: at one election per millisecond a
// term reaches 2^62 after ~146 million years, and arithmetic such as term + 1
// or index + count on values below the ceilings cannot wrap.
inline constexpr Term kMaxTerm = Term{1} << 62;
inline constexpr Index kMaxIndex = Index{1} << 62;
// A message may raise our term by at most this much at once. Terms grow by
// one per election, and pre-vote keeps partitioned nodes from inflating
// theirs, so an honest peer is never a million terms ahead; a forged message
// that jumped to near kMaxTerm could otherwise leave the cluster unable to
// ever elect again. (With pre-vote off, which kvnode never does, a node
// partitioned through a million elections would be locked out.)
inline constexpr Term kMaxTermJump = Term{1} << 20;
// The largest command a follower may forward in one kProp (bytes): what one
// transport frame can carry. The leader's per-follower budget
// (Options::max_forwarded_bytes_per_peer) bounds what it holds at once.
inline constexpr uint64_t kMaxForwardedProposalBytes = uint64_t{64} << 20;

// nullptr when m is well-formed as far as can be told without the core's
// state; otherwise a static string naming what is wrong.
const char* check_message_shape(const Message& m);

}  // namespace ckv::raft
