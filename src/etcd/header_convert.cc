// etcd's ResponseHeader from ours (see header_convert.h).
#include "etcd/header_convert.h"

#include <cstdint>

namespace ckv::etcd {

void fill_response_header(const Header& h, ::etcdserverpb::ResponseHeader* out) {
  out->set_cluster_id(h.cluster_id);
  out->set_member_id(h.member_id);
  out->set_revision(static_cast<int64_t>(h.revision));
  out->set_raft_term(h.raft_term);
}

}  // namespace ckv::etcd
