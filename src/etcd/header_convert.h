// etcd's ResponseHeader from ours (cluster_view.h's Header): the one filler every etcd service's replies use.
#pragma once

#include "etcd/cluster_view.h"
#include "etcd/etcdserver/etcdserverpb/rpc.pb.h"

namespace ckv::etcd {

void fill_response_header(const Header& h, ::etcdserverpb::ResponseHeader* out);

}  // namespace ckv::etcd
