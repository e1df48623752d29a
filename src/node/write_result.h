// What a proposed write returns to its caller once this node applied it: index, the request's outcome, its response.
#pragma once

#include <cstdint>

#include "common/status.h"
#include "fsm/command.h"

namespace ckv::node {

struct WriteResult {
  uint64_t index = 0;  // log index applied at
  // The request's own outcome (etcd's error text, e.g. lease not found,
  // compacted): ok means response is set.
  Status status;
  fsm::Response response;  // its header.revision is the store's
  bool duplicate = false;  // answered from the idempotency table
};

}  // namespace ckv::node
