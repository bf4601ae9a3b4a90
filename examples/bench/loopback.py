#!/usr/bin/python3
"""Loopback throughput and memory of the `rustico` binary, with the peers it
is compared to measured in the same run. Figures go to BENCHMARKS.md.

    cargo build --release -p rustico
    /usr/bin/python3 examples/bench/loopback.py [--size-mib 1024] [--runs 5] [--big-mib 4096]

1. rustico downloads SIZE from a rustico seeder (plaintext), RUNS times:
   median MB/s.
2. Encryption: rustico -> rustico and libtorrent -> libtorrent, RC4
   required on both sides vs plaintext only, alternating: medians and the
   RC4 / plaintext ratios.
3. rustico, aria2c and libtorrent each download SIZE from one libtorrent
   seeder (through opentracker), alternating, RUNS rounds: medians and
   rustico's ratio to the faster of the other two.
4. Peak resident memory (ru_maxrss) of rustico downloading BIG from a
   rustico seeder.

Times use time.monotonic(); MB is 10^6 bytes. Everything is on 127.0.0.1.
"""
import argparse, os, shutil, socket, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUSTICO = os.path.join(ROOT, "target", "release", "rustico")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on %d" % port)


def make_data(path, size):
    # Pseudo-random, incompressible, deterministic; written in 16 MiB chunks.
    import hashlib
    with open(path, "wb") as f:
        block = b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(1 << 19))
        left = size
        while left > 0:
            n = min(left, len(block))
            f.write(block[:n])
            block = block[1:] + block[:1]
            left -= n


def config(work, dht_setting=True):
    """A config with logs in `work`, 8 upload slots and the DHT off (a
    benchmark contacts no public node). Builds older than the DHT refuse
    the `dht` key: `dht_setting=False` leaves it out."""
    path = os.path.join(work, "config.toml" if dht_setting else "config-old.toml")
    with open(path, "w") as f:
        f.write('log_dir = "%s"\nupload_slots = 8\n' % os.path.join(work, "logs"))
        if dht_setting:
            f.write("dht = false\n")
    return path


def timed(cmd, **kw):
    start = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    return time.monotonic() - start


def rustico_vs_rustico(work, torrent, seed_dir, size, runs, encryption="disable", binary=RUSTICO):
    """`binary` downloads from a `binary` seeder; `encryption=None` passes no
    --encryption flag (for builds older than it)."""
    cfg = config(work, encryption is not None)
    port = free_port()
    enc = [] if encryption is None else ["--encryption", encryption]
    seed = subprocess.Popen([binary, "seed", torrent, seed_dir, "--port", str(port), "--config", cfg] + enc,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        time.sleep(1)  # the seeder verifies its data first
        rates = []
        for _ in range(runs):
            out = os.path.join(work, "dl-rustico")
            shutil.rmtree(out, ignore_errors=True)
            t = timed([binary, "download", torrent, "-o", out, "--port", "0",
                       "--peer", "127.0.0.1:%d" % port, "--config", cfg] + enc)
            rates.append(size / t / 1e6)
            shutil.rmtree(out, ignore_errors=True)
        return rates
    finally:
        seed.kill()
        seed.wait()


LT_SEED = r'''
import libtorrent as lt, sys, time
torrent, save, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
enc = sys.argv[4] if len(sys.argv) > 4 else "enabled"
ses = lt.session({"listen_interfaces": "127.0.0.1:%d" % port, "enable_dht": False, "enable_lsd": False,
    "enable_upnp": False, "enable_natpmp": False, "enable_outgoing_utp": False, "enable_incoming_utp": False,
    "allow_multiple_connections_per_ip": True,
    "out_enc_policy": getattr(lt.enc_policy, enc), "in_enc_policy": getattr(lt.enc_policy, enc),
    "allowed_enc_level": lt.enc_level.rc4 if enc == "forced" else lt.enc_level.both})
atp = lt.add_torrent_params(); atp.ti = lt.torrent_info(torrent); atp.save_path = save
atp.flags |= lt.torrent_flags.seed_mode
atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
h = ses.add_torrent(atp)
while not (ses.is_listening() and h.status().state == lt.torrent_status.seeding): time.sleep(0.05)
print("READY", flush=True)
time.sleep(3600)
'''

LT_LEECH = r'''
import libtorrent as lt, sys, time
torrent, save, peer = sys.argv[1], sys.argv[2], int(sys.argv[3])
enc = sys.argv[4] if len(sys.argv) > 4 else "enabled"
ses = lt.session({"listen_interfaces": "127.0.0.1:%d" % 0, "enable_dht": False, "enable_lsd": False,
    "enable_upnp": False, "enable_natpmp": False, "enable_outgoing_utp": False, "enable_incoming_utp": False,
    "allow_multiple_connections_per_ip": True,
    "out_enc_policy": getattr(lt.enc_policy, enc), "in_enc_policy": getattr(lt.enc_policy, enc),
    "allowed_enc_level": lt.enc_level.rc4 if enc == "forced" else lt.enc_level.both})
atp = lt.add_torrent_params(); atp.ti = lt.torrent_info(torrent); atp.save_path = save
atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
h = ses.add_torrent(atp)
h.connect_peer(("127.0.0.1", peer))
while not h.status().is_seeding: time.sleep(0.01)
'''


def against_libtorrent_seed(work, torrent, seed_dir, size, runs, tracker_port):
    port = free_port()
    seed = subprocess.Popen(["/usr/bin/python3", "-c", LT_SEED, torrent, seed_dir, str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    cfg = config(work)
    results = {"rustico": [], "aria2c": [], "libtorrent": []}
    try:
        assert seed.stdout.readline().strip() == "READY"
        time.sleep(2)  # let it announce to the tracker (aria2c finds it there)
        clients = list(results)
        for round_no in range(runs):
            # Rotate the order each round so no client always runs right
            # after the same other one (the page cache and the seeder carry
            # state from run to run).
            order = clients[round_no % len(clients):] + clients[:round_no % len(clients)]
            for client in order:
                out = os.path.join(work, "dl-" + client)
                shutil.rmtree(out, ignore_errors=True)
                os.makedirs(out)
                if client == "rustico":
                    cmd = [RUSTICO, "download", torrent, "-o", out, "--port", "0",
                           "--peer", "127.0.0.1:%d" % port, "--config", cfg]
                elif client == "aria2c":
                    cmd = ["aria2c", "--dir=" + out, "--seed-time=0", "--enable-dht=false", "--enable-dht6=false",
                           "--bt-enable-lpd=false", "--enable-peer-exchange=false", "--file-allocation=none",
                           "--listen-port=%d" % free_port(), "--bt-stop-timeout=120", torrent]
                else:
                    cmd = ["/usr/bin/python3", "-c", LT_LEECH, torrent, out, str(port)]
                t = timed(cmd, timeout=600)
                results[client].append(size / t / 1e6)
                shutil.rmtree(out, ignore_errors=True)
        return results
    finally:
        seed.kill()
        seed.wait()


def encryption_cost(work, torrent, seed_dir, size, runs):
    """rustico -> rustico and libtorrent -> libtorrent, each with RC4 forced
    on both sides and with plaintext only, alternating in one run."""
    results = {("rustico", "rc4"): [], ("rustico", "plain"): [],
               ("libtorrent", "rc4"): [], ("libtorrent", "plain"): []}
    for _ in range(runs):
        for mode, ours in (("rc4", "require"), ("plain", "disable")):
            results[("rustico", mode)] += rustico_vs_rustico(work, torrent, seed_dir, size, 1, ours)
        for mode, theirs in (("rc4", "forced"), ("plain", "disabled")):
            port = free_port()
            seed = subprocess.Popen(["/usr/bin/python3", "-c", LT_SEED, torrent, seed_dir, str(port), theirs],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            try:
                assert seed.stdout.readline().strip() == "READY"
                out = os.path.join(work, "dl-lt-enc")
                shutil.rmtree(out, ignore_errors=True)
                os.makedirs(out)
                t = timed(["/usr/bin/python3", "-c", LT_LEECH, torrent, out, str(port), theirs], timeout=600)
                results[("libtorrent", mode)].append(size / t / 1e6)
                shutil.rmtree(out, ignore_errors=True)
            finally:
                seed.kill()
                seed.wait()
    return results


def peak_rss(work, size_mib):
    src = os.path.join(work, "big-src")
    os.makedirs(src, exist_ok=True)
    data = os.path.join(src, "big4.bin")
    make_data(data, size_mib << 20)
    torrent = os.path.join(work, "big4.torrent")
    subprocess.run([RUSTICO, "create", data, "-o", torrent], check=True, stderr=subprocess.DEVNULL)
    cfg = config(work)
    port = free_port()
    seed = subprocess.Popen([RUSTICO, "seed", torrent, src, "--port", str(port), "--config", cfg],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        time.sleep(3)
        out = os.path.join(work, "dl-big")
        rss_file = os.path.join(work, "rss")
        t = timed(["/usr/bin/time", "-f", "%M", "-o", rss_file, RUSTICO, "download", torrent, "-o", out,
                   "--port", "0", "--peer", "127.0.0.1:%d" % port, "--config", cfg])
        with open(rss_file) as f:
            kib = int(f.read().split()[-1])
        shutil.rmtree(out, ignore_errors=True)
        os.remove(data)
        return kib / 1024.0, (size_mib << 20) / t / 1e6
    finally:
        seed.kill()
        seed.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--big-mib", type=int, default=4096)
    ap.add_argument("--skip", default="", help="comma list of: rustico,peers,encryption,memory")
    ap.add_argument("--baseline", default="",
                    help="an older rustico binary (e.g. built from 7fa41b2 in a worktree): "
                         "run 1 alternates it with this build and reports the ratio")
    args = ap.parse_args()
    skip = set(args.skip.split(","))
    if not os.path.exists(RUSTICO):
        sys.exit("build first: cargo build --release -p rustico")
    work = tempfile.mkdtemp(prefix="rustico-bench-")
    os.chmod(work, 0o755)
    try:
        size = args.size_mib << 20
        seed_dir = os.path.join(work, "seed")
        os.makedirs(seed_dir)
        data = os.path.join(seed_dir, "bench.bin")
        make_data(data, size)
        tracker_port = free_port()
        torrent = os.path.join(work, "bench.torrent")
        subprocess.run([RUSTICO, "create", data, "-o", torrent, "--tracker",
                        "http://127.0.0.1:%d/announce" % tracker_port], check=True, stderr=subprocess.DEVNULL)
        info = subprocess.run([RUSTICO, "info", torrent, "--json"], check=True, capture_output=True, text=True).stdout
        import json
        meta = json.loads(info)
        print("torrent: %d MiB, %d pieces of %d KiB" % (args.size_mib, meta["num_pieces"], meta["piece_length"] >> 10))
        if "rustico" not in skip and args.baseline:
            new, old = [], []
            for _ in range(args.runs):
                new += rustico_vs_rustico(work, torrent, seed_dir, size, 1)
                old += rustico_vs_rustico(work, torrent, seed_dir, size, 1, None, args.baseline)
            print("rustico <- rustico seeder, this build: median %.0f MB/s (runs: %s)"
                  % (statistics.median(new), ", ".join("%.0f" % r for r in new)))
            print("rustico <- rustico seeder, baseline:   median %.0f MB/s (runs: %s)"
                  % (statistics.median(old), ", ".join("%.0f" % r for r in old)))
            print("ratio this build / baseline: %.2f" % (statistics.median(new) / statistics.median(old)))
        elif "rustico" not in skip:
            rates = rustico_vs_rustico(work, torrent, seed_dir, size, args.runs)
            print("rustico <- rustico seeder: median %.0f MB/s (runs: %s)"
                  % (statistics.median(rates), ", ".join("%.0f" % r for r in rates)))
        if "encryption" not in skip:
            res = encryption_cost(work, torrent, seed_dir, size, args.runs)
            med = {k: statistics.median(v) for k, v in res.items()}
            for (who, mode), v in res.items():
                print("%-10s -> %-10s %-5s: median %.0f MB/s (runs: %s)"
                      % (who, who, mode, med[(who, mode)], ", ".join("%.0f" % r for r in v)))
            for who in ("rustico", "libtorrent"):
                print("%s: RC4 / plaintext = %.2f" % (who, med[(who, "rc4")] / med[(who, "plain")]))
            print("rustico / libtorrent with RC4: %.2f"
                  % (med[("rustico", "rc4")] / med[("libtorrent", "rc4")]))
        if "peers" not in skip:
            wl = os.path.join(work, "whitelist")
            with open(wl, "w") as f:
                f.write(meta["info_hash"] + "\n")
            os.chmod(wl, 0o644)
            tracker = subprocess.Popen(["opentracker", "-i", "127.0.0.1", "-p", str(tracker_port), "-P",
                                        str(tracker_port), "-w", wl], cwd=work,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_port(tracker_port)
                res = against_libtorrent_seed(work, torrent, seed_dir, size, args.runs, tracker_port)
            finally:
                tracker.kill()
                tracker.wait()
            med = {k: statistics.median(v) for k, v in res.items()}
            for k, v in res.items():
                print("%-10s <- libtorrent seeder: median %.0f MB/s (runs: %s)"
                      % (k, med[k], ", ".join("%.0f" % r for r in v)))
            best = max(med["aria2c"], med["libtorrent"])
            print("ratio rustico / faster of aria2c and libtorrent: %.2f" % (med["rustico"] / best))
        if "memory" not in skip:
            rss, rate = peak_rss(work, args.big_mib)
            print("peak RSS downloading %d MiB: %.1f MiB (at %.0f MB/s)" % (args.big_mib, rss, rate))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
