# Hostile peers for examples/tests/hostile_peers.rs (issue #20, classes 6-9
# and the "rejects everything" / "flips choke" peers). Loopback only.
#
# argv: MODE INFO_HASH_HEX ARGS...
#   requests PORT CONNS COUNT   dial the seeder CONNS times; each connection
#                               is interested, waits for the unchoke, sends
#                               COUNT 16 KiB requests and never reads again.
#   metadata PORT COUNT         send COUNT ut_metadata requests, never read.
#   interest PORT SECONDS RATE  flip interested / not interested at RATE
#                               bytes a second (reading what comes back).
#   haveall PORT COUNT PIECES BITFIELDS
#                               BITFIELDS bitfields that each add a piece
#                               (between interest flips), a have of every
#                               piece, then have-all COUNT times, reading
#                               what comes back.
#   reject LISTEN_PORT PIECES   a seeder that rejects every request (fast).
#   chokeflip LISTEN_PORT PIECES
#                               a seeder without the fast extension that
#                               answers each batch of requests with choke,
#                               unchoke.
# Prints READY once listening (seeder modes), FLOODED once the flood was
# sent, and "COUNT requests_received bytes_sent" every 0.2 s (seeder modes).
import os, re, socket, struct, sys, threading, time

mode, info_hash = sys.argv[1], bytes.fromhex(sys.argv[2])
args = [int(a) for a in sys.argv[3:]]


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        got = s.recv(n - len(buf))
        if not got:
            raise EOFError
        buf += got
    return buf


def read_msg(s):
    (n,) = struct.unpack(">I", recv_exact(s, 4))
    return recv_exact(s, n) if n else b""


def handshake_bytes(fast, ext):
    reserved = bytearray(8)
    if ext:
        reserved[5] |= 0x10
    if fast:
        reserved[7] |= 0x04
    return b"\x13BitTorrent protocol" + bytes(reserved) + info_hash + b"-EV0001-" + os.urandom(12)


def dial(port, fast=True, ext=True, rcvbuf=None):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    s.sendall(handshake_bytes(fast, ext))
    recv_exact(s, 68)
    return s


def msg(mid, payload=b""):
    return struct.pack(">IB", len(payload) + 1, mid) + payload


def drain(s):
    def run():
        try:
            while s.recv(1 << 16):
                pass
        except OSError:
            pass
    threading.Thread(target=run, daemon=True).start()


def hold():
    print("FLOODED", flush=True)
    time.sleep(3600)


if mode == "requests":
    port, conns, count = args
    held = []
    for _ in range(conns):
        s = dial(port, rcvbuf=4096)
        s.sendall(msg(2))  # interested
        while True:
            m = read_msg(s)
            if m[:1] == b"\x01":  # unchoke
                break
        reqs = b"".join(msg(6, struct.pack(">III", i % 64, 0, 16384)) for i in range(count))
        s.sendall(reqs)
        held.append(s)
    hold()

elif mode == "metadata":
    port, count = args
    s = dial(port, rcvbuf=4096)
    s.sendall(msg(20, b"\x00" + b"d1:md11:ut_metadatai3eee"))
    ut = None
    while ut is None:
        m = read_msg(s)
        if m[:2] == b"\x14\x00":
            found = re.search(rb"11:ut_metadatai(\d+)e", m)
            ut = int(found.group(1)) if found else 0
    one = msg(20, bytes([ut]) + b"d8:msg_typei0e5:piecei0ee")
    batch = one * 1000
    for _ in range(count // 1000):
        s.sendall(batch)
    hold()

elif mode == "interest":
    port, seconds, rate = args
    s = dial(port)
    drain(s)
    flips = (msg(2) + msg(3)) * 10000
    start = time.monotonic()
    end = start + seconds
    sent = 0
    while time.monotonic() < end:
        s.sendall(flips)
        sent += len(flips)
        time.sleep(max(0.0, start + sent / rate - time.monotonic()))
    print("SENT", sent, flush=True)
    hold()

elif mode == "haveall":
    port, count, pieces, bitfields = args
    s = dial(port)
    drain(s)
    bits = bytearray((pieces + 7) // 8)
    flip = msg(2) + msg(3)
    for i in range(bitfields):
        bits[i // 8] |= 0x80 >> (i % 8)
        s.sendall(msg(5, bytes(bits)) + flip)
    s.sendall(b"".join(msg(4, struct.pack(">I", i)) for i in range(pieces)))
    s.sendall(msg(14) * count)
    hold()

elif mode in ("reject", "chokeflip"):
    listen_port, pieces = args
    fast = mode == "reject"
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", listen_port))
    srv.listen(8)
    counts = {"requests": 0, "sent": 0}
    lock = threading.Lock()

    def send(s, data):
        s.sendall(data)
        with lock:
            counts["sent"] += len(data)

    def serve(s):
        try:
            head = recv_exact(s, 68)
            if head[28:48] != info_hash:
                s.close()
                return
            s.sendall(handshake_bytes(fast, False))
            if fast:
                send(s, msg(14) + msg(1))  # have all, unchoke
            else:
                bits = bytearray(b"\xff" * (pieces // 8))
                if pieces % 8:
                    bits.append((0xFF << (8 - pieces % 8)) & 0xFF)
                send(s, msg(5, bytes(bits)) + msg(1))
            while True:
                m = read_msg(s)
                if m[:1] != b"\x06":
                    continue
                with lock:
                    counts["requests"] += 1
                if fast:
                    send(s, msg(16, m[1:13]))
                else:
                    send(s, msg(0) + msg(1))  # choke, unchoke
        except (EOFError, OSError):
            pass

    def report():
        while True:
            time.sleep(0.2)
            with lock:
                print("COUNT", counts["requests"], counts["sent"], flush=True)

    threading.Thread(target=report, daemon=True).start()
    print("READY", flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()
else:
    sys.exit("unknown mode " + mode)
