// The process's metric instruments (one node per process), counted where things happen and rendered by /metrics.
//
// Code that counts includes this header and makes one call at the place
// the event happens (`metrics::instruments().wal_fsync_seconds.observe(s)`),
// so the counting stays a line in the owner's file. Values an owner can
// answer cheaply at any time (Raft indexes, term, key and lease counts,
// watchers) are not here: /metrics reads them from the node when scraped
// (http/metrics_endpoint.h). docs/metrics.md lists every metric.
//
// Process-wide like Prometheus clients' default registry: kvnode runs one
// node per process. Unit tests that run several nodes in one process see
// these counters summed over them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "metrics/exposition.h"
#include "metrics/metrics.h"
#include "metrics/peer_traffic.h"
#include "metrics/request_table.h"

namespace ckv::metrics {

// HTTP routes with their own series ("other" for the rest, "/v3/other" for
// unknown gateway paths), so that a scanner's random paths cannot grow the
// label set.
size_t http_route_index(std::string_view path);
std::string_view http_route_name(size_t index);

// etcd's gRPC methods ("/etcdserverpb.KV/Range"), and "unknown" for any
// other name a client sends.
size_t grpc_method_index(std::string_view full_method);

// A member id as the peer label spells it: 16 hex digits, as etcd labels its peers.
std::string hex_id(uint64_t id);

// The gRPC status code names as etcd's grpc_server_handled_total spells them ("OK", "Unavailable", ...).
std::string grpc_code_name(size_t code);

struct Instruments {
  Instruments();
  Instruments(const Instruments&) = delete;
  Instruments& operator=(const Instruments&) = delete;

  // Raft and the server.
  Counter leader_changes;             // a different leader became known (not "none")
  Counter proposals_committed;        // client writes proposed through this node and applied
  Counter proposals_failed;           // ... answered with an error (refused, timed out, leader lost)
  Gauge proposals_pending;            // ... not answered yet
  // Storage.
  Histogram wal_fsync_seconds{kDiskBucketsSeconds};  // one fdatasync of a WAL batch
  Counter wal_written_bytes;                          // bytes of WAL batches written
  Histogram snapshot_save_seconds{kSnapshotBucketsSeconds};  // writing one local snapshot file
  Gauge snapshot_size_bytes;                                  // the last snapshot file written or installed
  Counter snapshots_saved;
  // Transport: per peer.
  PeerTraffic peers;
  // Front ends.
  RequestTable http;
  RequestTable grpc;

  // The families above, in the text format, in the order registered.
  void render(Exposition& out) const;

 private:
  void render_peers(Exposition& out) const;
  Registry registry_;  // filled by the constructor
};

Instruments& instruments();

}  // namespace ckv::metrics
