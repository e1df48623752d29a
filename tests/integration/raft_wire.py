"""A hostile raft peer for integration tests: speaks kvnode's stream protocol (hello v4, message format 1) from Python.

Encodings follow src/transport/stream_codec.h (hello), src/transport/message_codec.h
(messages and frames), src/fsm/command.cc (the key-value command inside an entry)
and node_id_for in src/node/member_info.cc (a member's id is FNV-1a of its name).
Nothing here is trusted by the node: tests use it to send what an attacker could.
"""

import socket
import struct

MSG = {name: i for i, name in enumerate([
    "PreVote", "PreVoteResp", "Vote", "VoteResp", "Append", "AppendResp", "Heartbeat",
    "HeartbeatResp", "Snapshot", "SnapshotResp", "TimeoutNow", "ReadIndex", "ReadIndexResp"])}

HELLO_MAGIC = 0x54564b43
HELLO_VERSION = 4
HELLO_STREAM, HELLO_PROBE, HELLO_ANSWER = 0, 1, 2
MESSAGE_FORMAT = 1
ENTRY_NORMAL, ENTRY_CONFIG = 0, 1
U64_MAX = (1 << 64) - 1


def _crc_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def node_id(name: str) -> int:
    """node_id_for(): FNV-1a 64 of the member's name (its raft address unless -id was given)."""
    h = 0xcbf29ce484222325
    for c in name.encode():
        h ^= c
        h = (h * 0x100000001b3) & U64_MAX
    return h or 1


def frame(payload: bytes) -> bytes:
    return struct.pack("<II", len(payload), crc32c(payload)) + payload


def hello(frm, to, name="", raft_address="", api_address="", incarnation="", kind=HELLO_STREAM,
          cluster_id=0) -> bytes:
    """cluster_id 0: a sender without a configuration, which every node hears out."""
    def field(s):
        b = s.encode()[:255]
        return bytes([len(b)]) + b
    payload = struct.pack("<IBBQQ", HELLO_MAGIC, HELLO_VERSION, kind, frm, to)
    payload += field(name) + field(raft_address) + field(api_address) + field(incarnation)
    payload += struct.pack("<Q", cluster_id)
    return frame(payload)


def set_command(key: bytes, value: bytes) -> bytes:
    """fsm::encode_command for a set: format 1, type 0, u32 key length, key, value."""
    return struct.pack("<BBI", 1, 0, len(key)) + key + value


def message(type_name, frm, to, term=0, log_index=0, log_term=0, commit=0, index=0, hint_index=0,
            hint_term=0, context=0, offset=0, data_length=0, reject=False, done=False, entries=(),
            snapshot_index=0, snapshot_term=0, snapshot_size=0, membership=b"", data=b"") -> bytes:
    """One message payload; entries are (term, index, type, data) tuples."""
    out = struct.pack("<BB", MESSAGE_FORMAT, MSG[type_name])
    out += struct.pack("<12Q", frm, to, term, log_index, log_term, commit, index, hint_index,
                       hint_term, context, offset, data_length)
    out += bytes([(1 if reject else 0) | (2 if done else 0)])
    out += struct.pack("<I", len(entries))
    for (e_term, e_index, e_type, e_data) in entries:
        out += struct.pack("<QQBI", e_term, e_index, e_type, len(e_data)) + e_data
    out += struct.pack("<QQQI", snapshot_index, snapshot_term, snapshot_size, len(membership)) + membership
    out += struct.pack("<I", len(data)) + data
    return out


def probe(address, timeout=5.0):
    """Asks whoever listens at a raft address who it is, as any outsider can (a probe hello)."""
    peer = HostilePeer(address, 0, 0, timeout=timeout)
    try:
        peer.say_hello(kind=HELLO_PROBE)
        return peer.read_answer()
    finally:
        peer.close()


class HostilePeer:
    """A TCP connection to a node's raft port that claims to be node `frm`."""

    def __init__(self, address, frm, to, source_host=None, timeout=5.0):
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout,
                                             source_address=(source_host, 0) if source_host else None)
        self.frm = frm
        self.to = to

    def say_hello(self, **identity):
        self.sock.sendall(hello(self.frm, self.to, **identity))

    def read_answer(self):
        """The acceptor's answer hello as a dict (kind, from, name, raft_address, api_address,
        incarnation, cluster_id), or None if it closed the stream instead."""
        head = self._read_exact(8)
        if head is None:
            return None
        length, _ = struct.unpack("<II", head)
        payload = self._read_exact(length)
        if payload is None:
            return None
        _, _, kind, frm, _ = struct.unpack("<IBBQQ", payload[:22])
        answer = {"kind": kind, "from": frm}
        pos = 22
        for name in ("name", "raft_address", "api_address", "incarnation"):
            n = payload[pos]
            answer[name] = payload[pos + 1:pos + 1 + n].decode()
            pos += 1 + n
        (answer["cluster_id"],) = struct.unpack("<Q", payload[pos:pos + 8])
        return answer

    def send(self, payload: bytes):
        self.sock.sendall(frame(payload))

    def send_raw(self, data: bytes):
        self.sock.sendall(data)

    def closed_by_peer(self, timeout=5.0):
        """True once the node has closed the connection (EOF or reset) within timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _read_exact(self, n):
        buf = b""
        try:
            while len(buf) < n:
                chunk = self.sock.recv(n - len(buf))
                if not chunk:
                    return None
                buf += chunk
        except (ConnectionResetError, socket.timeout):
            return None
        return buf
