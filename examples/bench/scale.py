#!/usr/bin/python3
"""Many torrents in one process: threads, resident memory and start-up time
of `rustico` seeding N small torrents, with libtorrent seeding the same N
torrents in the same run. Figures go to BENCHMARKS.md (issue #15).

    cargo build --release -p rustico
    /usr/bin/python3 examples/bench/scale.py [--torrents 2000] [--settle 5] [--binary PATH]

Each torrent is one 16 KiB file of its own bytes (one piece), written with
its `.torrent` by this script (bencode by hand: `rustico create` per
torrent would dominate the run). The data is on disk before the clients
start, so both only check it.

- rustico: `rustico download T1 ... TN -o DIR --seed`. Start-up is the time
  until its log says every torrent found its piece on disk.
- libtorrent: one session, every torrent added in seed mode; start-up is
  the time until every torrent reports seeding.
Then, after SETTLE seconds more, threads (`Threads:`) and resident memory
(`VmRSS:`) from /proc/PID/status. Times use time.monotonic(). Everything
stays on 127.0.0.1; no tracker, no DHT.
"""
import argparse, hashlib, os, subprocess, sys, tempfile, time

from bencode import bencode

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUSTICO = os.path.join(ROOT, "target", "release", "rustico")
PIECE = 16384


def make_torrents(work, n):
    data_dir = os.path.join(work, "data")
    tor_dir = os.path.join(work, "torrents")
    os.makedirs(data_dir)
    os.makedirs(tor_dir)
    paths = []
    for i in range(n):
        name = "t%05d.bin" % i
        seed = hashlib.sha256(b"%d" % i).digest()
        data = (seed * (PIECE // 32))[:PIECE]
        with open(os.path.join(data_dir, name), "wb") as f:
            f.write(data)
        info = {"name": name, "length": PIECE, "piece length": PIECE,
                "pieces": hashlib.sha1(data).digest()}
        path = os.path.join(tor_dir, "t%05d.torrent" % i)
        with open(path, "wb") as f:
            f.write(bencode({"info": info}))
        paths.append(path)
    return data_dir, paths


def proc_status(pid):
    fields = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return int(fields["Threads"]), int(fields["VmRSS"].split()[0]) / 1024.0


def run_rustico(binary, work, data_dir, torrents, settle):
    logs = os.path.join(work, "logs")
    cfg = os.path.join(work, "config.toml")
    with open(cfg, "w") as f:
        f.write('log_dir = "%s"\ndht = false\n' % logs)
    log = os.path.join(logs, "rustico.log")
    start = time.monotonic()
    p = subprocess.Popen([binary, "download"] + torrents +
                         ["-o", data_dir, "--seed", "--port", "0", "--config", cfg],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if p.poll() is not None:
                raise RuntimeError("rustico exited with %s" % p.returncode)
            ready = 0
            if os.path.exists(log):
                with open(log, errors="replace") as f:
                    ready = sum(1 for line in f if "1 of 1 pieces already on disk" in line)
            if ready >= len(torrents):
                break
            if time.monotonic() - start > 600:
                raise RuntimeError("rustico: %d of %d torrents ready after 600 s" % (ready, len(torrents)))
            time.sleep(0.1)
        startup = time.monotonic() - start
        time.sleep(settle)
        threads, rss = proc_status(p.pid)
        return startup, threads, rss
    finally:
        p.kill()
        p.wait()


LT = r'''
import libtorrent as lt, sys, time, os
data_dir, settle, torrents = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
start = time.monotonic()
ses = lt.session({"listen_interfaces": "127.0.0.1:0", "enable_dht": False, "enable_lsd": False,
    "enable_upnp": False, "enable_natpmp": False, "active_limit": -1, "active_seeds": -1})
handles = []
for t in torrents:
    atp = lt.add_torrent_params(); atp.ti = lt.torrent_info(t); atp.save_path = data_dir
    atp.flags |= lt.torrent_flags.seed_mode
    atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    handles.append(ses.add_torrent(atp))
while not all(h.status().is_seeding for h in handles):
    time.sleep(0.1)
startup = time.monotonic() - start
time.sleep(settle)
fields = dict(l.split(":", 1) for l in open("/proc/self/status"))
print(startup, int(fields["Threads"]), int(fields["VmRSS"].split()[0]) / 1024.0, flush=True)
'''


def run_libtorrent(data_dir, torrents, settle):
    out = subprocess.run(["/usr/bin/python3", "-c", LT, data_dir, str(settle)] + torrents,
                         check=True, capture_output=True, text=True).stdout.split()
    return float(out[0]), int(out[1]), float(out[2])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--torrents", type=int, default=2000)
    ap.add_argument("--settle", type=float, default=5.0)
    ap.add_argument("--binary", default=RUSTICO, help="the rustico binary to measure")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="rustico-scale-") as work:
        data_dir, torrents = make_torrents(work, args.torrents)
        print("%d torrents of one 16 KiB piece each; load average %s" %
              (args.torrents, open("/proc/loadavg").read().split()[0]))
        print("| client | torrents | start-up (s) | threads | RSS (MiB) |")
        print("|---|---|---|---|---|")
        r = run_rustico(args.binary, work, data_dir, torrents, args.settle)
        print("| rustico | %d | %.1f | %d | %.1f |" % (args.torrents, r[0], r[1], r[2]))
        sys.stdout.flush()
        lt = run_libtorrent(data_dir, torrents, args.settle)
        print("| libtorrent | %d | %.1f | %d | %.1f |" % (args.torrents, lt[0], lt[1], lt[2]))


if __name__ == "__main__":
    main()
