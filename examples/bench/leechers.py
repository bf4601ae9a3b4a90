#!/usr/bin/python3
"""One seeder, many concurrent leecher connections (issue #15, benchmark 2):
`rustico` and libtorrent as the seeder of the same torrent in the same run,
each serving N leecher connections at once from a light harness in this
script that speaks the peer wire protocol itself.

    cargo build --release -p rustico
    /usr/bin/python3 examples/bench/leechers.py [--leechers 500] [--size-mib 4]
        [--pieces 0] [--binary target/release/rustico] [--only rustico|libtorrent]

The torrent is one file of SIZE MiB (pseudo-random bytes, 256 KiB pieces)
written by this script, with its `.torrent` (bencode by hand). Each seeder
has the data on disk before it starts:

- rustico: `rustico download X.torrent -o DIR --seed --port 0 --config CFG`,
  CFG allowing N+50 peers per torrent, N+50 per IP address and N upload
  slots (every leecher unchoked at once), DHT off, encryption "prefer"
  (plaintext accepted). Its port comes from its log.
- libtorrent (python3-libtorrent, /usr/bin/python3): one session on
  127.0.0.1, DHT/LSD/UPnP/NAT-PMP and uTP off, seed mode,
  `connections_limit` 3N, `unchoke_slots_limit` N,
  `allow_multiple_connections_per_ip`. (With `connections_limit` N+50 =
  550, libtorrent 2.0.8 disconnected every peer past 376 open, "too many
  connections"; 3N lets it take all N.) Its figures include the Python
  interpreter that hosts it.

The harness (one thread, `selectors`, plain non-blocking sockets, no
encryption, no extensions): leecher number i binds its socket to its own
source address 127.1.(i // 250).(i % 250 + 1), so per-IP limits do not
apply; at most RAMP connections are in their handshake at once, and a
connection refused or closed before the seeder's handshake is retried (at
most RETRIES times, counted). Each leecher sends the handshake and
`interested`, and waits. Once every leecher has the seeder's handshake (all
N connections open at once), each requests its pieces, PIPELINE blocks of
16 KiB outstanding, re-requesting what a `choke` dropped, and checks each
piece's SHA-1 as it completes. A leecher is served when every piece it
wanted passed its check. Connections stay open until every leecher is done.

Reported per seeder: leechers served (and hash failures, connections lost,
retries), the most connections open at once, the seeder's threads (the most
seen, sampling /proc/PID/status every 0.1 s), peak RSS (VmHWM), CPU time
(utime+stime) and the aggregate upload: payload bytes received by all
leechers over the time from the gate opening to the last piece. The
harness is Python on the same cores: it bounds the aggregate rate, so
compare seeders by the ratio, measured in the same run. MiB = 2^20 bytes,
MB/s = 10^6 bytes per second; times from time.monotonic().
"""
import argparse, errno, hashlib, os, random, resource, selectors, socket, subprocess
import sys, tempfile, time

from bencode import bencode

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PIECE = 256 * 1024
BLOCK = 16384
PSTR = b"\x13BitTorrent protocol"


def make_torrent(work, size_mib):
    """Writes DIR/bench.bin and bench.torrent; returns (data dir, torrent,
    info-hash, piece hashes, piece lengths)."""
    data_dir = os.path.join(work, "data")
    os.makedirs(data_dir)
    size = size_mib * 1024 * 1024
    rng = random.Random(15)
    data = rng.randbytes(size)
    with open(os.path.join(data_dir, "bench.bin"), "wb") as f:
        f.write(data)
    hashes, lengths = [], []
    for off in range(0, size, PIECE):
        piece = data[off:off + PIECE]
        hashes.append(hashlib.sha1(piece).digest())
        lengths.append(len(piece))
    info = {"name": "bench.bin", "length": size, "piece length": PIECE,
            "pieces": b"".join(hashes)}
    torrent = os.path.join(work, "bench.torrent")
    with open(torrent, "wb") as f:
        f.write(bencode({"info": info}))
    return data_dir, torrent, hashlib.sha1(bencode(info)).digest(), hashes, lengths


class Proc:
    """A seeder process's figures from /proc."""

    def __init__(self, pid):
        self.pid = pid
        self.max_threads = 0

    def sample(self):
        try:
            with open("/proc/%d/status" % self.pid) as f:
                for line in f:
                    if line.startswith("Threads:"):
                        self.max_threads = max(self.max_threads, int(line.split()[1]))
        except OSError:
            pass

    def final(self):
        fields = {}
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        with open("/proc/%d/stat" % self.pid) as f:
            rest = f.read().rsplit(")", 1)[1].split()
        cpu = (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")
        self.sample()
        return {"threads": self.max_threads, "threads_end": int(fields["Threads"]),
                "hwm_mib": int(fields["VmHWM"].split()[0]) / 1024.0, "cpu_s": cpu}


class Leecher:
    def __init__(self, n, src, wanted, lengths):
        self.n, self.src = n, src
        self.wanted = wanted
        self.lengths = lengths
        self.sock = None
        self.state = "idle"  # idle, connecting, handshake, open, done, failed
        self.attempts = 0
        self.retry_at = 0.0
        self.inbuf = bytearray()
        self.out = bytearray()
        self.handshaken = False
        self.choked = True
        self.started = False
        self.todo = []  # (piece, offset, length) not yet requested
        self.outstanding = set()
        self.pieces = {}  # piece -> (bytearray, blocks received)
        self.left = set(wanted)
        self.received = 0
        self.why = ""


class Harness:
    def __init__(self, args, port, info_hash, hashes, lengths, proc):
        self.args, self.port, self.info_hash = args, port, info_hash
        self.hashes, self.lengths, self.proc = hashes, lengths, proc
        self.sel = selectors.DefaultSelector()
        rng = random.Random(args.seed)
        pieces = list(range(len(hashes)))
        self.leechers = []
        for n in range(args.leechers):
            wanted = pieces if args.pieces <= 0 else sorted(rng.sample(pieces, min(args.pieces, len(pieces))))
            src = "127.1.%d.%d" % (n // 250, n % 250 + 1)
            self.leechers.append(Leecher(n, src, wanted, lengths))
        self.retries = 0
        self.hash_failures = 0
        self.lost = 0
        self.open_now = 0
        self.most_open = 0
        self.gate = None
        self.last_piece = None
        self.bytes = 0

    # ---- connections ----
    def connect(self, lc, now):
        lc.attempts += 1
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        try:
            s.bind((lc.src, 0))
            err = s.connect_ex(("127.0.0.1", self.port))
        except OSError as e:
            err = e.errno
        if err not in (0, errno.EINPROGRESS):
            s.close()
            self.retry(lc, now, "connect: %s" % os.strerror(err))
            return
        lc.sock = s
        lc.state = "connecting"
        lc.inbuf = bytearray()
        lc.out = bytearray()
        lc.handshaken = False
        self.sel.register(s, selectors.EVENT_WRITE, lc)

    def close(self, lc):
        if lc.sock is not None:
            try:
                self.sel.unregister(lc.sock)
            except (KeyError, ValueError):
                pass
            lc.sock.close()
            lc.sock = None

    def retry(self, lc, now, why):
        self.close(lc)
        if lc.attempts > self.args.retries:
            lc.state, lc.why = "failed", why
            return
        self.retries += 1
        lc.state = "idle"
        lc.retry_at = now + 0.05 * lc.attempts

    def lose(self, lc, why):
        self.close(lc)
        if lc.state == "open":
            self.open_now -= 1
        if lc.state != "done":
            lc.state, lc.why = "failed", why
            self.lost += 1

    def send(self, lc, data):
        lc.out += data
        self.flush(lc)

    def flush(self, lc):
        if lc.out and lc.sock is not None:
            try:
                sent = lc.sock.send(lc.out)
                del lc.out[:sent]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as e:
                self.lose(lc, "send: %s" % e)
                return
        if lc.sock is not None and lc.state != "connecting":
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if lc.out else 0)
            self.sel.modify(lc.sock, events, lc)

    # ---- protocol ----
    def on_writable(self, lc, now):
        if lc.state == "connecting":
            err = lc.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.retry(lc, now, "connect: %s" % os.strerror(err))
                return
            lc.state = "handshake"
            self.sel.modify(lc.sock, selectors.EVENT_READ, lc)
            peer_id = b"-PY0001-" + b"%012d" % lc.n
            self.send(lc, PSTR + bytes(8) + self.info_hash + peer_id)
        else:
            self.flush(lc)

    def on_readable(self, lc, now):
        try:
            data = lc.sock.recv(1 << 18)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            data, err = b"", e
        else:
            err = None
        if not data:
            why = "closed" if err is None else str(err)
            if not lc.handshaken:
                self.retry(lc, now, "before the handshake: " + why)
            else:
                self.lose(lc, why)
            return
        lc.inbuf += data
        self.parse(lc, now)

    def parse(self, lc, now):
        buf = lc.inbuf
        off = 0
        if not lc.handshaken:
            if len(buf) < 68:
                return
            if bytes(buf[:20]) != PSTR or bytes(buf[28:48]) != self.info_hash:
                self.lose(lc, "bad handshake")
                return
            off = 68
            lc.handshaken = True
            lc.state = "open"
            self.open_now += 1
            self.most_open = max(self.most_open, self.open_now)
            self.send(lc, b"\x00\x00\x00\x01\x02")  # interested
            if lc.sock is None:
                return
        end = len(buf)
        while end - off >= 4:
            length = int.from_bytes(buf[off:off + 4], "big")
            if end - off - 4 < length:
                break
            if length:
                kind = buf[off + 4]
                if kind == 0:
                    lc.choked = True
                    # Without the fast extension a choke drops our requests.
                    lc.todo[:0] = sorted(lc.outstanding)
                    lc.outstanding.clear()
                elif kind == 1:
                    lc.choked = False
                elif kind == 7:
                    self.on_block(lc, buf, off + 5, length - 1, now)
                    if lc.state == "failed":
                        return
            off += 4 + length
        del buf[:off]
        self.pump(lc)

    def on_block(self, lc, buf, at, n, now):
        piece = int.from_bytes(buf[at:at + 4], "big")
        begin = int.from_bytes(buf[at + 4:at + 8], "big")
        size = n - 8
        key = (piece, begin, size)
        if key not in lc.outstanding:
            return  # unasked, or already had
        lc.outstanding.discard(key)
        slot = lc.pieces.get(piece)
        if slot is None:
            slot = lc.pieces[piece] = [bytearray(lc.lengths[piece]), 0]
        slot[0][begin:begin + size] = buf[at + 8:at + 8 + size]
        slot[1] += size
        lc.received += size
        self.bytes += size
        if slot[1] == lc.lengths[piece]:
            del lc.pieces[piece]
            if hashlib.sha1(slot[0]).digest() != self.hashes[piece]:
                self.hash_failures += 1
                self.lose(lc, "piece %d failed its SHA-1 check" % piece)
                return
            lc.left.discard(piece)
            self.last_piece = now
            if not lc.left:
                lc.state = "done"

    def start(self, lc):
        lc.started = True
        for p in lc.wanted:
            for b in range(0, lc.lengths[p], BLOCK):
                lc.todo.append((p, b, min(BLOCK, lc.lengths[p] - b)))
        lc.todo.reverse()  # pop() from the end: in order
        self.pump(lc)

    def pump(self, lc):
        if not lc.started or lc.choked or lc.sock is None:
            return
        msgs = []
        while lc.todo and len(lc.outstanding) < self.args.pipeline:
            key = lc.todo.pop()
            lc.outstanding.add(key)
            msgs.append(b"\x00\x00\x00\x0d\x06" + key[0].to_bytes(4, "big") +
                        key[1].to_bytes(4, "big") + key[2].to_bytes(4, "big"))
        if msgs:
            self.send(lc, b"".join(msgs))

    # ---- the run ----
    def run(self):
        start = time.monotonic()
        next_sample = 0.0
        while True:
            now = time.monotonic()
            if now >= next_sample:
                self.proc.sample()
                next_sample = now + 0.1
            if now - start > self.args.timeout:
                break
            in_handshake = sum(1 for lc in self.leechers if lc.state in ("connecting", "handshake"))
            for lc in self.leechers:
                if in_handshake >= self.args.ramp:
                    break
                if lc.state == "idle" and lc.retry_at <= now:
                    self.connect(lc, now)
                    in_handshake += lc.state == "connecting"
            states = [lc.state for lc in self.leechers]
            if self.gate is None and all(s in ("open", "done", "failed") for s in states):
                self.gate = now
                for lc in self.leechers:
                    if lc.state == "open":
                        self.start(lc)
            if self.gate is not None and all(s in ("done", "failed") for s in states):
                break
            for key, events in self.sel.select(timeout=0.05):
                lc = key.data
                if events & selectors.EVENT_WRITE and lc.sock is not None:
                    self.on_writable(lc, now)
                if events & selectors.EVENT_READ and lc.sock is not None:
                    self.on_readable(lc, now)
        figures = self.proc.final()
        for lc in self.leechers:
            if lc.sock is not None:
                self.sel.unregister(lc.sock)
                lc.sock.close()
        served = sum(1 for lc in self.leechers if lc.state == "done")
        whys = {}
        for lc in self.leechers:
            if lc.state != "done":
                whys[lc.why or lc.state] = whys.get(lc.why or lc.state, 0) + 1
        took = (self.last_piece - self.gate) if (self.last_piece and self.gate) else float("nan")
        figures.update(served=served, most_open=self.most_open, retries=self.retries,
                       hash_failures=self.hash_failures, lost=self.lost, bytes=self.bytes,
                       seconds=took, rate=self.bytes / took / 1e6 if took == took and took > 0 else 0.0,
                       unserved=whys)
        return figures


def start_rustico(args, work, data_dir, torrent):
    logs = os.path.join(work, "rustico-logs")
    cfg = os.path.join(work, "rustico.toml")
    with open(cfg, "w") as f:
        f.write('log_dir = "%s"\ndht = false\npeers_per_torrent = %d\npeers_per_ip = %d\n'
                'upload_slots = %d\nstate_dir = "%s"\nencryption = "prefer"\n'
                % (logs, args.leechers + 50, args.leechers + 50, args.slots or args.leechers,
                   os.path.join(work, "rustico-state")))
    p = subprocess.Popen([args.binary, "download", torrent, "-o", data_dir, "--seed",
                          "--port", "0", "--config", cfg],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = os.path.join(logs, "rustico.log")
    deadline = time.monotonic() + 60
    port, ready = None, False
    while not (port and ready):
        if p.poll() is not None:
            raise RuntimeError("rustico exited with %s" % p.returncode)
        if time.monotonic() > deadline:
            p.kill()
            raise RuntimeError("rustico did not start seeding within 60 s")
        if os.path.exists(log):
            with open(log, errors="replace") as f:
                text = f.read()
            for line in text.splitlines():
                if "listening on port " in line:
                    port = int(line.rsplit("listening on port ", 1)[1].split()[0])
            ready = "pieces already on disk" in text
        time.sleep(0.05)
    return p, port


LT_SEEDER = r'''
import libtorrent as lt, sys
torrent, data_dir, n, slots = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ses = lt.session({"listen_interfaces": "127.0.0.1:0", "enable_dht": False, "enable_lsd": False,
    "enable_upnp": False, "enable_natpmp": False, "enable_outgoing_utp": False,
    "enable_incoming_utp": False, "allow_multiple_connections_per_ip": True,
    "connections_limit": 3 * n, "unchoke_slots_limit": slots,
    "alert_mask": 0})
atp = lt.add_torrent_params(); atp.ti = lt.torrent_info(torrent); atp.save_path = data_dir
atp.flags |= lt.torrent_flags.seed_mode
atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
h = ses.add_torrent(atp)
import time
while not h.status().is_seeding:
    time.sleep(0.05)
print("READY %d" % ses.listen_port(), flush=True)
sys.stdin.read()
'''


def start_libtorrent(args, data_dir, torrent):
    p = subprocess.Popen(["/usr/bin/python3", "-c", LT_SEEDER, torrent, data_dir,
                          str(args.leechers), str(args.slots or args.leechers)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if not line.startswith("READY "):
        p.kill()
        raise RuntimeError("libtorrent seeder said %r" % line)
    return p, int(line.split()[1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--leechers", type=int, default=500)
    ap.add_argument("--size-mib", type=int, default=4, help="torrent size (256 KiB pieces)")
    ap.add_argument("--pieces", type=int, default=0,
                    help="pieces each leecher fetches, a random subset (0: all)")
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "rustico"))
    ap.add_argument("--only", choices=["rustico", "libtorrent"])
    ap.add_argument("--slots", type=int, default=0, help="upload slots (0: one per leecher)")
    ap.add_argument("--pipeline", type=int, default=16, help="requests outstanding per leecher")
    ap.add_argument("--ramp", type=int, default=32, help="connections in their handshake at once")
    ap.add_argument("--retries", type=int, default=10)
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--seed", type=int, default=1, help="seeds the pieces each leecher picks")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 4 * args.leechers + 256))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # the seeders inherit it
    with tempfile.TemporaryDirectory(prefix="rustico-leechers-") as work:
        data_dir, torrent, info_hash, hashes, lengths = make_torrent(work, args.size_mib)
        print("%d leechers, torrent of %d MiB (%d pieces), %s pieces each; "
              "load average %s" % (args.leechers, args.size_mib, len(hashes),
                                   args.pieces or "all", open("/proc/loadavg").read().split()[0]))
        print("| seeder | served | most open | threads (max) | peak RSS (MiB) | CPU (s) "
              "| upload (MB/s) | time (s) | retries | lost |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        seeders = [("rustico", start_rustico), ("libtorrent", start_libtorrent)]
        for name, start in seeders:
            if args.only and args.only != name:
                continue
            if name == "rustico":
                p, port = start(args, work, data_dir, torrent)
            else:
                p, port = start(args, data_dir, torrent)
            try:
                h = Harness(args, port, info_hash, hashes, lengths, Proc(p.pid))
                r = h.run()
            finally:
                p.kill()
                p.wait()
            print("| %s | %d of %d | %d | %d | %.1f | %.1f | %.0f | %.2f | %d | %d |" % (
                name, r["served"], args.leechers, r["most_open"], r["threads"], r["hwm_mib"],
                r["cpu_s"], r["rate"], r["seconds"], r["retries"], r["lost"]))
            if r["unserved"]:
                print("  %s: not served: %s" % (name, r["unserved"]), file=sys.stderr)
            sys.stdout.flush()


if __name__ == "__main__":
    main()
