// kvnode: one consensuskv server process (Raft over TCP + HTTP API), command-line compatible with the reference Go kvnode.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>
#include <arpa/inet.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include "auth/jwt_tokens.h"
#include "auth/simple_tokens.h"
#include "etcd/auth_service.h"
#include "etcd/grpc_server.h"
#include "etcd/kv_service.h"
#include "etcd/lease_service.h"
#include "etcd/lock_service.h"
#include "etcd/election_service.h"
#include "etcd/maintenance_service.h"
#include "http/address.h"
#include "http/join_credentials.h"
#include "http/limits.h"
#include "http/server.h"
#include "node/node.h"
#include "node/restore.h"
#include "tls/tls_files.h"
#include "transport/message_codec.h"
#include "transport/tcp_transport.h"

namespace {

constexpr int kExitRuntimeError = 1;
constexpr int kExitUsage = 2;  // what Go's flag package exits with on a bad flag

// Go's flag package takes long names with one dash (-raft-address=x,
// -bootstrap); CLI11 reserves one dash for single letters. Rewrite "-name..."
// to "--name..." so that -flag=v, -flag v, --flag=v and --flag v all work.
// Single letters (-h) and everything after "--" are left alone.
std::vector<std::string> normalize_go_flags(int argc, char** argv) {
  std::vector<std::string> args;
  bool rest = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") rest = true;
    if (!rest && a.size() > 2 && a[0] == '-' && a[1] != '-') a.insert(0, "-");
    args.push_back(std::move(a));
  }
  return args;
}

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "kvnode: %s\nRun 'kvnode --help' for the flags.\n", message.c_str());
  std::exit(kExitUsage);
}

// File descriptors besides HTTP connections: Raft streams, the log store,
// snapshots, the upstream pool, stdio.
constexpr rlim_t kFdHeadroom = 512;

// Each HTTP connection is a file descriptor, and Debian's default soft limit
// (1024) is below what the connection limits allow. Like Go's runtime, raise
// the soft limit to the hard one; warn when even that is too low.
void raise_fd_limit(rlim_t wanted) {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  if (lim.rlim_cur < lim.rlim_max) {
    rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
  }
  if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < wanted) {
    spdlog::warn(
        "open file limit is {}, below the {} the HTTP connection limits need; raise it (ulimit -n) "
        "or lower -http-max-connections",
        static_cast<unsigned long long>(lim.rlim_cur), static_cast<unsigned long long>(wanted));
  }
}

void check_address(const char* flag, const std::string& value) {
  if (!ckv::http::parse_host_port(value)) {
    usage_error(std::string("-") + flag + " must be host:port (port 1-65535), got \"" + value +
                "\"");
  }
}

// Whether host (of a host:port) can only be reached from this machine:
// "localhost", 127.0.0.0/8, ::1. A name other than localhost may resolve
// anywhere, so it is not.
bool is_loopback_host(const std::string& host) {
  if (host == "localhost") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) return IN6_IS_ADDR_LOOPBACK(&v6);
  return false;
}

// Parses args (argv without the program name, Go-style flags allowed) into
// app; exits on a usage error; returns the exit code when help was asked for.
std::optional<int> parse_flags(CLI::App& app, int argc, char** argv) {
  std::vector<std::string> args = normalize_go_flags(argc, argv);
  std::reverse(args.begin(), args.end());  // CLI11 takes the vector form in reverse order
  try {
    app.parse(args);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    usage_error(e.what());
  }
  return std::nullopt;
}

// `kvnode restore --snapshot FILE --data-dir DIR ...` (node/restore.h): a
// new one-member cluster from a backup, as etcdutl's snapshot restore.
int run_restore(int argc, char** argv) {
  ckv::node::RestoreOptions o;
  CLI::App app{
      "kvnode restore: create the data dir of the first member of a NEW cluster from a backup\n"
      "(etcdctl snapshot save, GET /v3/maintenance/snapshot, or a snapshot-*.snap file). The backup is\n"
      "checked whole (SHA-256, CRC-32C, contents) before anything is written; revisions and leases are\n"
      "kept; the cluster gets a new identity; start the member with the same -raft-address (and -id)."};
  app.name("kvnode restore");
  app.add_option("--snapshot", o.snapshot_path, "the backup file")->required();
  app.add_option("--data-dir", o.data_dir, "the new member's data dir (must not exist, or be empty)")->required();
  app.add_option("--raft-address", o.raft_address, "host:port the new member's Raft server will listen on")
      ->required();
  app.add_option("--name,--id", o.name, "the new member's name (its -id; default: the raft address)");
  app.add_option("--api-address", o.api_address, "host:port of its HTTP API (else registered at its start)");
  app.add_option("--grpc-address", o.grpc_address, "host:port of its gRPC API (else registered at its start)");
  if (auto code = parse_flags(app, argc, argv)) return *code;
  check_address("raft-address", o.raft_address);
  if (!o.api_address.empty()) check_address("api-address", o.api_address);
  if (!o.grpc_address.empty()) check_address("grpc-address", o.grpc_address);
  auto r = ckv::node::restore_data_dir(o);
  if (!r.is_ok()) {
    std::fprintf(stderr, "kvnode restore: %s\n", r.status().message().c_str());
    return kExitRuntimeError;
  }
  std::printf("restored %s into %s: new cluster %016llx, member %s (%016llx), raft index %llu, term %llu, "
              "revision %lld, %llu keys\n",
              o.snapshot_path.c_str(), o.data_dir.c_str(), static_cast<unsigned long long>(r.value().cluster_id),
              (o.name.empty() ? o.raft_address : o.name).c_str(), static_cast<unsigned long long>(r.value().member_id),
              static_cast<unsigned long long>(r.value().index), static_cast<unsigned long long>(r.value().term),
              static_cast<long long>(r.value().revision), static_cast<unsigned long long>(r.value().keys));
  return 0;
}

// `kvnode snapshot status FILE [-w simple|table|json]`: etcdctl snapshot
// status for our backups (etcdctl's own reads only bbolt files).
int run_snapshot(int argc, char** argv) {
  CLI::App app{"kvnode snapshot: inspect backups"};
  app.name("kvnode snapshot");
  app.require_subcommand(1);
  std::string file;
  std::string format = "simple";
  CLI::App* status = app.add_subcommand("status", "print a backup's hash, revision, total keys and size, "
                                                  "as etcdctl snapshot status does (checks the file whole)");
  status->add_option("file", file, "the backup file")->required();
  status->add_option("-w,--write-out", format, "simple, table or json (etcdctl's)")->capture_default_str();
  if (auto code = parse_flags(app, argc, argv)) return *code;
  auto st = ckv::node::snapshot_status(file);
  if (!st.is_ok()) {
    std::fprintf(stderr, "kvnode snapshot status: %s\n", st.status().message().c_str());
    return kExitRuntimeError;
  }
  auto text = ckv::node::format_snapshot_status(st.value(), format);
  if (!text.is_ok()) usage_error(text.status().message());
  std::fputs(text.value().c_str(), stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "restore") return run_restore(argc - 1, argv + 1);
  if (argc > 1 && std::string_view(argv[1]) == "snapshot") return run_snapshot(argc - 1, argv + 1);
  using ckv::node::NodeOptions;
  NodeOptions opts;
  opts.api_address = "127.0.0.1:8000";  // the reference's defaults
  opts.data_dir = "./raft-data";
  std::string join_target;
  std::string join_auth_file;
  std::string log_level = "info";
  uint64_t max_body_bytes = ckv::http::kDefaultMaxBodyBytes;
  int commit_timeout_ms = 5000;
  int join_timeout_ms = 30000;
  ckv::http::ServerOptions http_opts;
  std::string grpc_front_end = "own";  // -grpc-front-end (etcd/grpc_server.h, GrpcFrontEnd)
  std::string auto_compaction_mode = "periodic";
  std::string auto_compaction_retention = "0";

  CLI::App app{
      "kvnode: a consensuskv server (Raft replication + HTTP API on one process).\n"
      "Flags may be written Go-style with one dash: -flag=value, -flag value, --flag=value, --flag "
      "value.\n"
      "Start the first node with -bootstrap; add others with /join on a member or with -join."};
  app.name("kvnode");
  // Go's flag package (the seed's, and etcd's) lets a repeated flag's last
  // value win; scripts that append an override to a base command rely on it.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.get_formatter()->column_width(34);
  app.footer(
      "Subcommands (each takes --help):\n"
      "  kvnode restore --snapshot FILE --data-dir DIR --raft-address HOST:PORT [--name ID]\n"
      "                 [--api-address HOST:PORT] [--grpc-address HOST:PORT]\n"
      "      create the data dir of the first member of a new cluster from a backup\n"
      "  kvnode snapshot status FILE [-w simple|table|json]\n"
      "      check a backup whole and print its hash, revision, keys and size\n"
      "Exit status: 0 stopped by SIGTERM/SIGINT, 1 refused to start, 2 bad flag,\n"
      "3 storage failure, 4 a committed log entry it cannot decode.\n"
      "More: man kvnode; docs/operations.md (installed in /usr/share/doc/consensuskv/).");
  app.add_option("--raft-address", opts.raft_address,
                 "host:port this node's Raft server listens on and peers connect to (required)");
  app.add_option(
         "--api-address", opts.api_address,
         "host:port of this node's HTTP API; other members forward requests to it, so it must be "
         "reachable from them")
      ->capture_default_str();
  app.add_option("--grpc-address", opts.grpc_address,
                 "host:port to serve etcd's v3 gRPC API on (docs/api.md, \"etcd v3 API\"); empty: none");
  app.add_option("--grpc-front-end", grpc_front_end,
                 "which server reads the gRPC port: \"own\" (our HTTP/2 server answers KV calls and relays "
                 "the rest to grpc++ in process) or \"grpc\" (grpc++ alone)")
      ->check(CLI::IsMember({"own", "grpc"}))
      ->capture_default_str();
  app.add_option("--data-dir", opts.data_dir,
                 "directory for the Raft log, vote and snapshots (created if missing)")
      ->capture_default_str();
  app.add_flag(
      "--bootstrap", opts.bootstrap,
      "found a new one-member cluster if the data dir is empty; ignored when it holds state, so a "
      "restart with the same command resumes (-bootstrap, -bootstrap=true, -bootstrap=false)");
  app.add_option("--join", join_target,
                 "HOST:APIPORT of a member's HTTP API: ask it to add this node (retried with "
                 "backoff until this "
                 "node is a voter)");
  app.add_option("--join-auth-file", join_auth_file,
                 "with -join to a cluster with auth enabled: a file whose first line is user:password (root), "
                 "sent as HTTP Basic with the /join requests (docs/security.md); keep it mode 0600");
  app.add_flag("--force-new-cluster", opts.force_new_cluster,
               "etcd's: after losing a quorum for good, restart this surviving member as the only voter, "
               "its whole log committed (docs/operations.md, \"Disaster recovery\"); then add members again. "
               "Never on a cluster that still has a quorum");
  app.add_flag("--inmem", opts.in_memory,
               "keep everything in memory (tests): nothing survives a restart");
  app.add_option("--id", opts.name, "this node's name in the cluster (default: the raft address)");
  app.add_option("--snapshot-threshold", opts.snapshot_threshold,
                 "take a snapshot after this many entries applied since the last one (0: never); past a 4 MiB "
                 "snapshot, also not before those entries add up to a quarter of its size (at most 256 MiB)")
      ->capture_default_str();
  app.add_option(
         "--snapshot-trailing", opts.snapshot_trailing,
         "log entries kept after a snapshot, so that slightly lagging followers need no snapshot")
      ->capture_default_str();
  app.add_option("--tick-ms", opts.tick_ms, "Raft tick interval in milliseconds")
      ->capture_default_str();
  app.add_option("--election-ticks", opts.election_ticks,
                 "election timeout in ticks (randomized in [n, 2n)); must exceed -heartbeat-ticks")
      ->capture_default_str();
  app.add_option("--heartbeat-ticks", opts.heartbeat_ticks, "leader heartbeat interval in ticks")
      ->capture_default_str();
  app.add_option("--max-body-bytes", max_body_bytes,
                 "largest accepted HTTP request body (larger: 413); at most what one Raft log entry can "
                 "carry (checked at startup)")
      ->capture_default_str();
  app.add_option("--http-max-connections", http_opts.max_connections,
                 "client connections the API serves at once (more: 503 and closed)")
      ->capture_default_str();
  app.add_option("--http-max-connections-per-ip", http_opts.max_connections_per_ip,
                 "of those, how many one client address may hold")
      ->capture_default_str();
  app.add_option("--http-member-connections", http_opts.member_connections,
                 "connections reserved, beyond -http-max-connections, for requests other members "
                 "forward from their hosts")
      ->capture_default_str();
  app.add_option("--http-header-timeout-ms", http_opts.header_timeout_ms,
                 "a request's line and headers must arrive within this (else the connection closes); the "
                 "first request's deadline runs from accept and includes the TLS handshake; also how "
                 "long a gRPC connection may take to finish its handshake")
      ->capture_default_str();
  app.add_option("--http-idle-timeout-ms", http_opts.idle_timeout_ms,
                 "a kept-alive connection with no request for this long is closed")
      ->capture_default_str();
  app.add_option("--http-body-timeout-ms", http_opts.body_timeout_ms,
                 "a request's body must arrive within this once its headers have")
      ->capture_default_str();
  app.add_option("--commit-timeout-ms", commit_timeout_ms,
                 "how long a write or linearizable read may wait for the cluster before 504/503")
      ->capture_default_str();
  app.add_option("--join-timeout-ms", join_timeout_ms,
                 "how long /join waits for a new member to catch up and become a voter")
      ->capture_default_str();
  app.add_option("--space-reserve-bytes", opts.space_reserve_bytes,
                 "bytes kept preallocated in the data dir and released when the disk fills, so the node "
                 "can still record votes and commits while it refuses writes (0: none; see "
                 "docs/operations.md)")
      ->capture_default_str();
  app.add_option("--wal-segment-bytes", opts.wal_segment_bytes,
                 "size each WAL segment file is preallocated to; a batch that does not fit starts a new one "
                 "(4096 to 16 GiB; see docs/operations.md)")
      ->capture_default_str();
  app.add_flag("--wal-zero-ahead", opts.wal_zero_ahead,
               "write each WAL segment's blocks with zeros ahead of the appends, so that a batch's "
               "fdatasync needs no file system journal commit (ext4, XFS); false on copy-on-write "
               "file systems (btrfs, ZFS), where it only doubles the log's writes")
      ->capture_default_str();
  // Client TLS, etcd's flags and meaning (tls/tls_files.h, docs/api.md "TLS").
  ckv::tls::TlsFlags tls_flags;
  app.add_option(
      "--cert-file", tls_flags.cert_file,
      "PEM certificate (chain) for the client listeners: with -key-file, the HTTP API and "
      "the gRPC port serve only TLS, and this node reaches other members' APIs over TLS");
  app.add_option("--key-file", tls_flags.key_file, "PEM private key of -cert-file (unencrypted)");
  app.add_option("--trusted-ca-file", tls_flags.trusted_ca_file,
                 "PEM CA bundle that client certificates must chain to; as in etcd, giving it "
                 "requires client certificates. Also verifies other members' API certificates "
                 "(default: the system store)");
  app.add_flag("--client-cert-auth", tls_flags.client_cert_auth,
               "require a client certificate signed by -trusted-ca-file on the client listeners");
  // Peer TLS, etcd's flags (tls/tls_files.h, docs/security.md "Peer TLS").
  ckv::tls::PeerTlsFlags peer_tls_flags;
  app.add_option("--peer-cert-file", peer_tls_flags.cert_file,
                 "PEM certificate (chain) this node presents on every raft connection, dialled or "
                 "accepted; its SANs must name the host of this node's raft address");
  app.add_option("--peer-key-file", peer_tls_flags.key_file, "PEM private key of -peer-cert-file (unencrypted)");
  app.add_option("--peer-trusted-ca-file", peer_tls_flags.trusted_ca_file,
                 "PEM CA bundle every peer's certificate must chain to; with -peer-cert-file and "
                 "-peer-key-file (all three or none) every raft connection is mutual TLS 1.2+");
  app.add_option("--peer-cert-allowed-cn", peer_tls_flags.allowed_cn,
                 "also require this CN in every peer's certificate (etcd's; empty: any CN)");
  CLI::Option* peer_cert_auth_flag =
      app.add_flag("--peer-client-cert-auth", peer_tls_flags.client_cert_auth,
                   "etcd's; always on with peer TLS (every raft connection is mutual), accepted for "
                   "etcd command lines; =false is refused");
  ckv::transport::TcpTransportOptions transport_opts;
  app.add_option("--raft-inbound-buffer-bytes", transport_opts.max_inbound_buffer_bytes,
                 "most bytes all inbound raft streams together may buffer (partial frames); over it "
                 "the stream holding the most is closed (at least one 64 MiB frame)")
      ->capture_default_str();
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, off (to stderr)")
      ->capture_default_str();
  app.add_option("--auto-compaction-mode", auto_compaction_mode,
                 "etcd's: 'periodic' (retention is a time) or 'revision' (retention is a revision count)")
      ->capture_default_str();
  app.add_option("--auto-compaction-retention", auto_compaction_retention,
                 "etcd's: history the leader keeps by compacting; periodic: hours (\"1\") or a duration "
                 "(\"30m\", \"1h30m\"); revision: a count (\"1000\"); 0: off")
      ->capture_default_str();

  std::string watch_progress_interval = "10m";
  app.add_option("--experimental-watch-progress-notify-interval", watch_progress_interval,
                 "etcd's: how often watchers created with progress_notify hear the revision when idle "
                 "(a duration: \"10m\", \"5s\", \"500ms\")")
      ->capture_default_str();

  // Client auth, etcd's flags (docs/security.md, "Client authentication").
  std::string auth_token = "simple";
  app.add_option("--auth-token", auth_token,
                 "etcd's: the kind of auth tokens Authenticate issues: 'simple' (random, known to every "
                 "member, forgotten after -auth-token-ttl unused) or "
                 "'jwt,sign-method=RS256,pub-key=PATH,priv-key=PATH,ttl=5m' (signed, verified by every "
                 "member with pub-key; docs/security.md)")
      ->capture_default_str();
  int64_t auth_token_ttl_sec = ckv::auth::kDefaultTokenTtlSec;
  app.add_option("--auth-token-ttl", auth_token_ttl_sec,
                 "etcd's: seconds an unused simple token stays valid on a member")
      ->capture_default_str();

  if (auto code = parse_flags(app, argc, argv)) return *code;

  peer_tls_flags.client_cert_auth_given = peer_cert_auth_flag->count() > 0;
  if (opts.raft_address.empty())
    usage_error("missing -raft-address (e.g. -raft-address=127.0.0.1:5000)");
  check_address("raft-address", opts.raft_address);
  check_address("api-address", opts.api_address);
  if (!opts.grpc_address.empty()) check_address("grpc-address", opts.grpc_address);
  if (!join_target.empty()) check_address("join", join_target);
  if (!opts.in_memory && opts.data_dir.empty()) usage_error("-data-dir must not be empty");
  if (opts.tick_ms <= 0) usage_error("-tick-ms must be positive");
  if (opts.heartbeat_ticks <= 0 || opts.election_ticks <= opts.heartbeat_ticks) {
    usage_error("need 0 < -heartbeat-ticks < -election-ticks");
  }
  // Every body accepted must become a log entry Raft can replicate.
  if (ckv::Status s = ckv::http::check_max_body_bytes(max_body_bytes, opts.max_uncommitted_bytes);
      !s.is_ok()) {
    usage_error(s.message());
  }
  if (http_opts.max_connections <= 0 || http_opts.max_connections_per_ip <= 0 ||
      http_opts.member_connections < 0) {
    usage_error(
        "need -http-max-connections > 0, -http-max-connections-per-ip > 0, "
        "-http-member-connections >= 0");
  }
  if (http_opts.header_timeout_ms <= 0 || http_opts.idle_timeout_ms <= 0 ||
      http_opts.body_timeout_ms <= 0) {
    usage_error("-http-header-timeout-ms, -http-idle-timeout-ms, -http-body-timeout-ms must be positive");
  }
  constexpr uint64_t kLargestRaftFrame = ckv::transport::kMaxFrameBytes + ckv::transport::kFrameHeaderBytes;
  if (transport_opts.max_inbound_buffer_bytes < kLargestRaftFrame) {
    usage_error("-raft-inbound-buffer-bytes must be at least " + std::to_string(kLargestRaftFrame) +
                " (the largest raft frame)");
  }
  if (commit_timeout_ms <= 0 || join_timeout_ms <= 0) usage_error("timeouts must be positive");
  // etcd's syntax: "simple", or "jwt,sign-method=RS256,pub-key=PATH,priv-key=PATH,ttl=5m".
  auto token_flag = ckv::auth::parse_auth_token_flag(auth_token);
  if (!token_flag.is_ok()) usage_error("-auth-token: " + token_flag.status().message());
  if (token_flag->type != "simple" && token_flag->type != "jwt") {
    usage_error("-auth-token: " + std::string(ckv::auth::kErrInvalidAuthOpts) + ": unknown token type '" +
                token_flag->type + "' (simple or jwt)");
  }
  int64_t jwt_ttl_ms = ckv::auth::kDefaultJwtTtlMs;
  if (token_flag->type == "jwt") {
    if (auto it = token_flag->options.find("ttl"); it != token_flag->options.end() && !it->second.empty()) {
      auto ttl = ckv::node::parse_go_duration_ms(it->second);
      if (!ttl.is_ok() || ttl.value() < 1000) {
        usage_error("-auth-token: " + std::string(ckv::auth::kErrInvalidAuthOpts) + ": bad ttl " + it->second +
                    " (a duration of at least 1s, e.g. 5m)");
      }
      jwt_ttl_ms = ttl.value();
    }
    if (!token_flag->options.contains("sign-method")) {
      usage_error("-auth-token: " + std::string(ckv::auth::kErrInvalidAuthMethod) + ": jwt needs sign-method=");
    }
    if (const std::string& m = token_flag->options.at("sign-method"); !ckv::auth::is_jwt_sign_method(m)) {
      usage_error("-auth-token: " + std::string(ckv::auth::kErrInvalidAuthMethod) + " '" + m +
                  "' (RS256/384/512, PS256/384/512, ES256/384/512, HS256/384/512)");
    }
  }
  if (auth_token_ttl_sec <= 0 || auth_token_ttl_sec > 365 * 24 * 3600) {
    usage_error("-auth-token-ttl must be between 1 and 31536000 seconds");
  }
  opts.auth_token_ttl_ms = auth_token_ttl_sec * 1000;
  if (auto interval = ckv::node::parse_go_duration_ms(watch_progress_interval);
      interval.is_ok() && interval.value() > 0) {
    opts.watch.progress_notify_interval_ms = interval.value();
  } else {
    usage_error("bad -experimental-watch-progress-notify-interval " + watch_progress_interval +
                " (a positive duration, e.g. 10m)");
  }
  if (auto compaction = ckv::node::parse_auto_compaction(auto_compaction_mode, auto_compaction_retention);
      compaction.is_ok()) {
    opts.auto_compaction = compaction.value();
  } else {
    usage_error(compaction.status().message());
  }
  const auto level = spdlog::level::from_str(log_level);
  if (level == spdlog::level::off && log_level != "off")
    usage_error("unknown -log-level " + log_level);
  if (opts.name.empty()) opts.name = opts.raft_address;

  spdlog::set_default_logger(spdlog::stderr_color_mt("kvnode"));
  spdlog::set_level(level);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%t] %v");

  // Read and checked before the data dir is touched: a bad file stops the
  // start with the flag and file named, before this node takes any part in
  // the cluster. A flag combination that makes no sense is a usage error.
  auto client_tls = ckv::tls::load_client_tls(tls_flags);
  if (!client_tls.is_ok()) {
    if (client_tls.status().code() == ckv::StatusCode::kInvalid)
      usage_error(client_tls.status().message());
    spdlog::critical("client TLS: {}", client_tls.status().message());
    return kExitRuntimeError;
  }
  if (client_tls.value()) {
    const ckv::tls::TlsMaterial& t = *client_tls.value();
    spdlog::info(
        "client TLS: cert-file={} ({}), key-file={}, trusted-ca-file={}, client certificates {}",
        tls_flags.cert_file, t.leaf_subject, tls_flags.key_file,
        tls_flags.trusted_ca_file.empty() ? "<none: system store>" : tls_flags.trusted_ca_file,
        t.verify_clients
            ? (tls_flags.client_cert_auth ? "required (-client-cert-auth)"
                                          : "required (-trusted-ca-file given, as etcd)")
            : "not requested");
    for (const std::string& w : t.warnings) spdlog::warn("client TLS: {}", w);
  }
  // JWT keys: read and checked here too, before the data dir.
  std::shared_ptr<const ckv::auth::JwtTokens> jwt;
  if (token_flag->type == "jwt") {
    for (const auto& [key, value] : token_flag->options) {
      if (key != "sign-method" && key != "pub-key" && key != "priv-key" && key != "ttl")
        spdlog::warn("-auth-token: unknown JWT option '{}' ignored (etcd ignores it too)", key);
    }
    auto made = ckv::auth::jwt_tokens_from_options(token_flag->options, jwt_ttl_ms);
    if (!made.is_ok()) {
      spdlog::critical("-auth-token: {}", made.status().message());
      return kExitRuntimeError;
    }
    jwt = std::move(made).value();
    spdlog::info("auth tokens: JWT {} ttl {} ms{}", jwt->sign_method(), jwt->ttl_ms(),
                 jwt->can_sign() ? "" : ", verify-only (no priv-key: Authenticate is refused here)");
  }
  const char* api_scheme = client_tls.value() ? "https" : "http";
  opts.client_tls = client_tls.value().has_value();
  auto peer_tls = ckv::tls::load_peer_tls(peer_tls_flags);
  if (!peer_tls.is_ok()) {
    if (peer_tls.status().code() == ckv::StatusCode::kInvalid) usage_error(peer_tls.status().message());
    spdlog::critical("peer TLS: {}", peer_tls.status().message());
    return kExitRuntimeError;
  }
  if (peer_tls.value()) {
    const ckv::tls::PeerTlsMaterial& t = *peer_tls.value();
    spdlog::info("peer TLS: every raft connection is mutual TLS; peer-cert-file={} ({}), "
                 "peer-key-file={}, peer-trusted-ca-file={}, peer-cert-allowed-cn={}",
                 peer_tls_flags.cert_file, t.leaf_subject, peer_tls_flags.key_file,
                 peer_tls_flags.trusted_ca_file, t.allowed_cn.empty() ? "<any>" : t.allowed_cn);
    for (const std::string& w : t.warnings) spdlog::warn("peer TLS: {}", w);
    transport_opts.peer_tls = *peer_tls.value();
    opts.peer_tls = true;
  } else if (auto hp = ckv::http::parse_host_port(opts.raft_address); hp && !is_loopback_host(hp->host)) {
    // Without peer TLS anyone who reaches the raft port can inject
    // well-formed messages. Fine on loopback; elsewhere the operator is told.
    spdlog::warn(
        "raft address {} is not loopback, and raft traffic is plaintext and unauthenticated: "
        "anyone who can reach it can forge raft messages; use -peer-cert-file, -peer-key-file and "
        "-peer-trusted-ca-file, or keep it on a private network (docs/security.md, \"Peer TLS\")",
        opts.raft_address);
  }

  // Signals: blocked here, before any thread exists, so every thread inherits
  // the mask and only sigwait() below sees SIGINT/SIGTERM.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a peer closing a socket is an error code, not a death
  raise_fd_limit(static_cast<rlim_t>(http_opts.max_connections) +
                 static_cast<rlim_t>(http_opts.member_connections) + kFdHeadroom);

  // Whether this start founds a cluster, waits to be added, or resumes:
  // bootstrap applies only to an empty data dir (node.h, "First boot").
  bool fresh = true;
  if (!opts.in_memory) {
    std::error_code ec;
    std::filesystem::create_directories(opts.data_dir, ec);
    if (ec) {
      spdlog::critical("cannot create data dir {}: {}", opts.data_dir, ec.message());
      return kExitRuntimeError;
    }
    fresh = std::filesystem::is_empty(opts.data_dir, ec);
  }
  const char* mode =
      !fresh ? (opts.bootstrap ? "resuming from the data dir (-bootstrap ignored: not empty)"
                               : "resuming from the data dir")
             : (opts.bootstrap ? "bootstrapping a new one-member cluster"
                               : "empty: waiting to be added to a cluster (/join or -join)");
  spdlog::info("kvnode starting: id={} raft={} api={} data-dir={} ({})", opts.name,
               opts.raft_address, opts.api_address, opts.in_memory ? "<in memory>" : opts.data_dir,
               mode);

  const ckv::raft::NodeId id = ckv::node::node_id_for(opts.name);
  auto transport = std::make_unique<ckv::transport::TcpTransport>(id, opts.raft_address, transport_opts);
  // Listening comes after Node::open: the data dir's lock is checked first,
  // so a second kvnode on the same dir (and the same address) is told who
  // holds the dir rather than that the port is taken.
  ckv::transport::TcpTransport* raft_listener = transport.get();
  // The Node asks for registration of this node's API address through this
  // hook (on the Raft thread); the server that does it is created after the
  // Node, so the hook finds it through a pointer set once it exists.
  std::atomic<ckv::http::HttpServer*> registrar{nullptr};
  auto register_hook = [&registrar](const ckv::node::MemberInfo& leader,
                                    const ckv::node::MemberInfo&) {
    if (ckv::http::HttpServer* s = registrar.load()) s->register_self(leader);
  };
  auto opened = ckv::node::Node::open(opts, std::move(transport), register_hook);
  if (!opened.is_ok()) {
    // A refusal to start (data dir in use, damaged or missing files): the
    // message names the file and the section of docs/operations.md to read.
    spdlog::critical("cannot open the node: {}", opened.status().to_string());
    return kExitRuntimeError;
  }
  std::unique_ptr<ckv::node::Node> node = std::move(opened).value();
  if (ckv::Status s = raft_listener->listen(); !s.is_ok()) {
    spdlog::critical("cannot listen on raft address {}: {}", opts.raft_address, s.to_string());
    return kExitRuntimeError;
  }

  // Who callers are and what they may do, for every client API.
  auto auth = std::make_unique<ckv::etcd::AuthService>(*node, ckv::etcd::AuthServiceOptions{commit_timeout_ms, jwt});
  // etcd's KV request layer, shared by the gRPC service and the /v3/kv gateway.
  auto kv = std::make_unique<ckv::etcd::KvService>(
      *node, ckv::etcd::KvServiceOptions{commit_timeout_ms, ckv::etcd::kDefaultKvWorkers, client_tls.value(),
                                         auth.get()});
  http_opts.kv = kv.get();
  // etcd's Lease request layer, shared the same way.
  ckv::etcd::LeaseServiceOptions lease_opts;
  lease_opts.request_timeout_ms = commit_timeout_ms;
  lease_opts.min_ttl_sec = ckv::etcd::min_lease_ttl_sec(opts.tick_ms * opts.election_ticks);
  lease_opts.tls = client_tls.value();
  lease_opts.auth = auth.get();
  auto lease = std::make_unique<ckv::etcd::LeaseService>(*node, lease_opts);
  http_opts.lease = lease.get();
  // etcd's v3lock service (Lock, Unlock) on the KV and Lease layers, for gRPC and /v3/lock/*.
  auto lock = std::make_unique<ckv::etcd::LockService>(*node, *kv, *lease);
  http_opts.lock = lock.get();
  // etcd's v3election service (Campaign, Proclaim, Leader, Observe, Resign) on the same layers.
  auto election = std::make_unique<ckv::etcd::ElectionService>(*node, *kv, *lease);
  http_opts.election = election.get();
  // Maintenance.Alarm, Defragment, Hash and HashKV, for gRPC and /v3/maintenance/*.
  auto maintenance = std::make_unique<ckv::etcd::MaintenanceService>(*node, auth.get());
  http_opts.maintenance = maintenance.get();
  http_opts.auth = auth.get();
  http_opts.listen_address = opts.api_address;
  http_opts.max_body_bytes = max_body_bytes;
  http_opts.commit_timeout_ms = commit_timeout_ms;
  http_opts.join_timeout_ms = join_timeout_ms;
  if (!join_auth_file.empty()) {
    bool readable_by_others = false;
    auto authorization = ckv::http::join_authorization_from_file(join_auth_file, readable_by_others);
    if (!authorization.is_ok()) usage_error(authorization.status().message());
    if (readable_by_others) {
      spdlog::warn("-join-auth-file {} can be read by group or others; chmod 600 it", join_auth_file);
    }
    http_opts.join_authorization = std::move(authorization).value();
  }
  http_opts.tls = client_tls.value();
  auto server = std::make_unique<ckv::http::HttpServer>(
      *node, ckv::node::MemberInfo{opts.name, opts.raft_address, opts.api_address, {}, opts.grpc_address}, http_opts);

  // Bind the API before starting Raft, so that a port in use stops us
  // before this node takes part in any election.
  if (ckv::Status s = server->start(); !s.is_ok()) {
    spdlog::critical("cannot serve the API on {}: {}", opts.api_address, s.to_string());
    return kExitRuntimeError;
  }
  std::unique_ptr<ckv::etcd::GrpcServer> grpc;
  if (!opts.grpc_address.empty()) {
    auto started = ckv::etcd::GrpcServer::start(*node, *kv, opts.grpc_address, client_tls.value(),
                                                http_opts.header_timeout_ms, lease.get(), auth.get(),
                                                lock.get(), election.get(), maintenance.get(),
                                                grpc_front_end == "own" ? ckv::etcd::GrpcFrontEnd::kOwn
                                                                             : ckv::etcd::GrpcFrontEnd::kGrpcpp);
    if (!started.is_ok()) {
      spdlog::critical("{}", started.status().to_string());
      return kExitRuntimeError;
    }
    grpc = std::move(started).value();
    spdlog::info("serving etcd's gRPC API on {}://{}", api_scheme, opts.grpc_address);
  }
  registrar = server.get();
  // How a node that hears no leader learns it was removed (node.h).
  node->set_peer_status_hook([&registrar](const ckv::node::MemberInfo& peer,
                                          std::function<void(ckv::Result<ckv::node::PeerView>)> done) {
    if (ckv::http::HttpServer* s = registrar.load()) return s->fetch_peer_status(peer, std::move(done));
    done(ckv::Status(ckv::StatusCode::kUnavailable, "stopping"));
  });
  node->start();
  spdlog::info("serving the API on {}://{}", api_scheme, opts.api_address);
  if (!join_target.empty()) server->join_via(join_target);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  spdlog::info("received {}: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
  // Node first: a leader hands off leadership and every waiting client gets
  // an answer while the HTTP threads still run; then the HTTP threads stop.
  // The Node goes before the server (see server.h, "Lifecycle").
  node->stop();
  // Right after the Node: it answers KV calls the stopped Node never will
  // ("etcdserver: server stopped"), so the front ends can finish every call.
  election->stop();  // as lock's: its waiters and observers get "server stopped"
  lock->stop();  // before the layers it calls, so its waiters get "server stopped", not a stopped layer's error
  kv->stop();
  lease->stop();
  maintenance->stop();
  auth->stop();
  registrar = nullptr;
  if (grpc) grpc->stop();
  server->stop();
  node.reset();
  server.reset();
  spdlog::info("stopped");
  return 0;
}
