#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/
from the repository's examples and data and from hand-encoded messages.
Run from anywhere; the corpora are committed (re-run after a format change;
inputs kept from fuzzing runs stay, and need converting by hand)."""
import hashlib
import os
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# --- protobuf wire encoding, enough for the seeds ---
def varint(n):
    n &= (1 << 64) - 1
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(num, wire, payload):
    key = varint((num << 3) | wire)
    if wire == 0:
        return key + varint(payload)
    if wire == 2:
        return key + varint(len(payload)) + payload
    if wire == 5:
        return key + payload
    raise ValueError(wire)


def packed_fixed64(num, values):
    return field(num, 2, b"".join(struct.pack("<Q", v) for v in values))


def packed_float(num, values):
    return field(num, 2, b"".join(struct.pack("<f", v) for v in values))


def seal(contents):
    return contents + b"PSSUM1\n\0" + hashlib.sha256(contents).digest()


def table_slice(table, keys, values=None):
    m = field(1, 0, table) + packed_fixed64(2, keys)
    if values is not None:
        m += packed_float(3, values)
    return m


def push(worker, keys, values, clock=None, partitions=()):
    m = field(1, 0, worker) + field(2, 0, 7) + field(3, 0, 1)
    if clock is not None:
        m += field(4, 0, clock)
    m += field(6, 0, 1) + field(9, 2, table_slice(0, keys, values))
    for p in partitions:
        m += field(11, 0, p)
    return m


def main():
    # Seeds are (over)written by name; other files in the corpora are inputs
    # the fuzzers found and kept as regressions, and stay.
    # Configs: the examples, and a few edges.
    for name in sorted(os.listdir(os.path.join(ROOT, "examples"))):
        with open(os.path.join(ROOT, "examples", name)) as f:
            put("fuzz_config", name, f.read())
    put("fuzz_config", "override.yaml", "train.epochs=3\ndata:\n  train_path: t.libsvm\n")
    put("fuzz_config", "security.yaml",
        "data:\n  train_path: t\nsecurity:\n  insecure: false\n  tls: {ca: ca.pem, cert: '{role}.pem', key: k}\n"
        "  limits:\n    max_keys_per_request: 10\n")
    put("fuzz_config", "list.yaml", "model:\n  type: mlp\n  hidden_units: [8, 4]\ndata: {train_path: x}\n")
    # LIBSVM: lines of spambase, and edges.
    with open(os.path.join(ROOT, "data", "spambase", "train.libsvm")) as f:
        lines = f.readlines()
    put("fuzz_libsvm", "spambase", "".join(lines[:20]))
    put("fuzz_libsvm", "edges", "1 1:0.5 3:1e-3 # c\n\n-1 2:inf\n+1 qid:3 4:1\n0 5:1 5:2\n")
    # CSV.
    put("fuzz_csv", "plain", "a,b,y\n1,2,0\n3,,1\nNA,4,0\n")
    put("fuzz_csv", "quoted", '"a","b,c",y\n"1","2",1\n"x""y",3,0\n')
    put("fuzz_csv", "classes", "y,f\n0,1.5\n2,?\n1,nan\n")
    # IDX: images (magic 0x803, 2 images of 2x2) + separator + labels (0x801).
    images = struct.pack(">IIII", 0x803, 2, 2, 2) + bytes([0, 10, 255, 3, 1, 0, 0, 9])
    labels = struct.pack(">II", 0x801, 2) + bytes([3, 7])
    put("fuzz_idx", "two", images + b"\xff\x00\xff\x00" + labels)
    # Model part files: table 0 (dim 1) and table 1 (dim 3), sealed and not.
    part = b"PSPART1\n" + struct.pack("<II", 0, 2)
    part += struct.pack("<IIQ", 0, 1, 2) + struct.pack("<QQ", 3, 9) + struct.pack("<ff", 0.5, -1)
    part += struct.pack("<IIQ", 1, 3, 1) + struct.pack("<Q", 4) + struct.pack("<fff", 1, 2, 3)
    put("fuzz_model", "sealed", seal(part))
    put("fuzz_model", "raw", part)
    # Checkpoint: a manifest and a partition state.
    state = field(1, 0, 0) + field(2, 0, 1) + field(3, 0, 5) + field(4, 0, 2)
    state += field(5, 2, field(1, 0, 0) + packed_fixed64(2, [7, 8]) + packed_float(3, [1, 2]))
    state += field(6, 2, field(1, 0, 0) + field(2, 0, 7) + field(3, 0, 3))
    state += field(7, 2, field(1, 0, 0) + field(2, 0, 2))
    manifest = field(1, 0, 1) + field(2, 0, 2) + field(3, 0, 1) + field(4, 2, b"partition-00000.state")
    manifest += field(9, 2, hashlib.sha256(seal(state)).digest())
    put("fuzz_checkpoint", "one", manifest + b"--\n" + state)
    # Scheduler state: a job (ASP, 1 server, 1 worker) with two nodes.
    job = field(1, 2, field(2, 0, 3) + field(5, 2, b"/tmp/fuzz-out"))
    job += field(2, 2, field(2, 0, 1) + field(3, 0, 1) + field(4, 0, 4))
    job += field(5, 2, field(2, 2, b"/dev/null"))
    st = field(1, 2, job) + field(2, 2, b"127.0.0.1") + field(3, 0, 7000) + field(4, 0, 2)
    st += field(6, 2, field(1, 0, 1) + field(2, 0, 1) + field(3, 0, 0) + field(4, 2, b"127.0.0.1:1"))
    st += field(6, 2, field(1, 0, 2) + field(2, 0, 2) + field(3, 0, 0))
    put("fuzz_state", "two-nodes", st)
    put("fuzz_state", "sealed", seal(st))
    # Server requests: method byte, mode byte, request.
    put("fuzz_server_rpc", "push-asp", bytes([0, 2]) + push(0, [1, 2, 3], [0.5, 1, -1]))
    put("fuzz_server_rpc", "push-bsp", bytes([0, 0]) + push(1, [5], [2.0], clock=0, partitions=[0, 1, 2, 3]))
    pull = field(1, 0, 0) + field(2, 0, 1) + field(4, 2, table_slice(0, [1, 2]))
    put("fuzz_server_rpc", "pull-ssp", bytes([1, 1]) + pull)
    put("fuzz_server_rpc", "tick", bytes([2, 1]) + field(1, 0, 1) + field(2, 0, 4))
    op = field(1, 0, 0) + field(2, 0, 1) + field(3, 0, 1) + field(4, 0, 0) + field(5, 2, push(0, [9], [1.0]))
    put("fuzz_server_rpc", "replicate", bytes([3, 2]) + field(1, 0, 1) + field(3, 2, op))
    put("fuzz_server_rpc", "clock", bytes([4, 0]) + field(1, 0, 1))
    # Data-plane frames: mode byte, then (24-byte header, body)*.
    def frame(kind, call_id, body, flags=0):
        return struct.pack("<IBBHIIQ", 0x32445350, kind, flags, 0, len(body), 0, call_id) + body
    stream = frame(1, 0, b"") + frame(2, 1, push(0, [1, 2, 3], [0.5, 1, -1])) + frame(3, 2, pull)
    put("fuzz_data_frame", "asp", bytes([2]) + stream)
    # Split bodies (flag 1): head length, head (raw_values = field 9 of the
    # slice), then the values.
    head = field(1, 0, 0) + field(2, 0, 7) + field(3, 0, 2) + field(6, 0, 1)
    head += field(9, 2, table_slice(0, [1, 2]) + field(9, 0, 2))
    split = struct.pack("<I", len(head)) + head + struct.pack("<ff", 0.25, -4)
    split_pull = struct.pack("<I", len(pull)) + pull
    put("fuzz_data_frame", "split", bytes([2]) + frame(1, 0, b"") + frame(2, 1, split, 1) + frame(3, 2, split_pull, 1))
    put("fuzz_data_frame", "bsp", bytes([0]) + frame(2, 1, push(1, [5], [2.0], clock=0, partitions=[0, 1, 2, 3])) + frame(3, 2, pull))
    # Scheduler requests: (method, length, request)*.
    def req(method, body):
        return bytes([method, len(body)]) + body
    seq = req(1, field(1, 0, 3) + field(2, 0, 100) + field(3, 0, 0))
    seq += req(2, field(1, 0, 3) + field(2, 0, 0) + field(3, 0, 4000) + field(4, 0, 1))
    seq += req(3, field(1, 0, 3) + field(2, 0, 0) + packed_float(3, [0.2, 0.9]) + packed_float(4, [0, 1]))
    seq += req(6, field(1, 0, 3) + field(2, 0, 1) + field(3, 2, b"unreachable"))
    seq += req(7, field(1, 0, 1)) + req(8, field(1, 0, 1)) + req(5, field(1, 0, 4))
    seq += req(0, field(1, 0, 2) + field(5, 0, 1)) + req(4, field(1, 0, 4) + field(2, 2, b"worker 1: boom"))
    put("fuzz_scheduler_rpc", "session", seq)


if __name__ == "__main__":
    main()
