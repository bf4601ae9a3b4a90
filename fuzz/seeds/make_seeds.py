#!/usr/bin/python3
"""Writes the seeds made by tools nobody here wrote: .torrent files from
mktorrent and libtorrent, magnet links from libtorrent, and HTTP and UDP
tracker answers from opentracker on 127.0.0.1. The wire-format seeds (peer
messages, resume files) come from our own encoders: see
fuzz/examples/make_seeds.rs. Run from anywhere with Debian's python3:

    /usr/bin/python3 fuzz/seeds/make_seeds.py
"""
import os
import random
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

import libtorrent as lt

SEEDS = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    folder = os.path.join(SEEDS, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def info_bytes(torrent):
    return lt.bencode(lt.bdecode(torrent)[b"info"])


def torrents(work):
    rng = random.Random(7)
    single = os.path.join(work, "hello.txt")
    with open(single, "wb") as f:
        f.write(bytes(rng.randrange(256) for _ in range(3000)))
    album = os.path.join(work, "album")
    os.makedirs(os.path.join(album, "sub"))
    with open(os.path.join(album, "a.txt"), "wb") as f:
        f.write(b"a line of text\n" * 300)
    with open(os.path.join(album, "sub", "b.bin"), "wb") as f:
        f.write(bytes(rng.randrange(256) for _ in range(40000)))

    made = {}
    for name, path in [("mktorrent-single", single), ("mktorrent-multi", album)]:
        out = os.path.join(work, name + ".torrent")
        subprocess.run(["mktorrent", "-d", "-l", "15", "-a", "http://127.0.0.1:6969/announce",
                        "-w", "http://127.0.0.1:8080/files/", "-o", out, path],
                       check=True, stdout=subprocess.DEVNULL)
        with open(out, "rb") as f:
            made[name] = f.read()
    for name, flags in [("libtorrent-v1", lt.create_torrent.v1_only), ("libtorrent-hybrid", 0)]:
        fs = lt.file_storage()
        lt.add_files(fs, album)
        ct = lt.create_torrent(fs, 16384, flags=flags)
        ct.add_tracker("udp://127.0.0.1:6969/announce", 0)
        ct.add_tracker("http://127.0.0.1:6969/announce", 1)
        ct.set_comment("fuzz seed")
        ct.set_priv(name.endswith("v1"))
        lt.set_piece_hashes(ct, work)
        made[name] = lt.bencode(ct.generate())
    for name, data in made.items():
        put("metainfo_torrent", name + ".torrent", data)
        put("metainfo_info", name + ".info", info_bytes(data))
        put("metainfo_magnet", name + ".magnet",
            lt.make_magnet_uri(lt.torrent_info(lt.bdecode(data))).encode())
    put("bencode_decode", "mktorrent-multi.torrent", made["mktorrent-multi"])
    put("bencode_decode_strict", "libtorrent-v1.torrent", made["libtorrent-v1"])
    put("bencode_tokens", "lenient-libtorrent-hybrid.torrent", b"\xfe" + made["libtorrent-hybrid"])
    put("bencode_tokens", "strict-mktorrent-single.torrent", b"\xff" + made["mktorrent-single"])
    v1 = lt.torrent_info(lt.bdecode(made["libtorrent-v1"]))
    hex_hash = str(v1.info_hashes().v1)
    put("metainfo_magnet", "peers-and-seeds.magnet",
        ("magnet:?xt=urn:btih:%s&dn=album&tr.1=udp%%3A%%2F%%2F127.0.0.1%%3A6969&"
         "x.pe=127.0.0.1:6881&x.pe=[::1]:51413&ws=http%%3A%%2F%%2F127.0.0.1%%2Ff" % hex_hash).encode())
    put("metainfo_magnet", "hybrid-btmh.magnet",
        b"magnet:?xt=urn:btmh:1220" + b"ab" * 32 + b"&dn=v2+only")
    return bytes.fromhex(hex_hash)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tracker_answers(work, info_hash):
    folder = os.path.join(work, "tracker")
    os.makedirs(folder)
    os.chmod(folder, 0o755)
    whitelist = os.path.join(folder, "whitelist")
    with open(whitelist, "w") as f:
        f.write(info_hash.hex() + "\n")
    os.chmod(whitelist, 0o644)
    port = free_port()
    tracker = subprocess.Popen(["opentracker", "-i", "127.0.0.1", "-p", str(port), "-P", str(port),
                                "-w", whitelist], cwd=folder,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = "http://127.0.0.1:%d" % port

        def get(path, params):
            for _ in range(100):
                try:
                    url = "%s/%s?%s" % (base, path, urllib.parse.urlencode(params))
                    return urllib.request.urlopen(url, timeout=5).read()
                except OSError:
                    time.sleep(0.05)
            raise RuntimeError("opentracker did not answer")

        def announce(peer, peer_port, hash_=info_hash):
            return get("announce", {"info_hash": hash_, "peer_id": peer, "port": peer_port,
                                    "uploaded": 0, "downloaded": 0, "left": 100, "compact": 1})

        # opentracker answers before it has read its whitelist: wait for it.
        for _ in range(200):
            if b"failure reason" not in announce(b"-XX0001-aaaaaaaaaaaa", 6881):
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("opentracker never accepted the whitelisted torrent")
        put("tracker_announce", "opentracker-peers", announce(b"-XX0001-bbbbbbbbbbbb", 6882))
        put("tracker_announce", "opentracker-not-whitelisted", announce(b"-XX0001-cccccccccccc", 6883, b"\x01" * 20))
        put("bencode_decode", "opentracker-announce", announce(b"-XX0001-bbbbbbbbbbbb", 6882))
        scrape = get("scrape", {"info_hash": info_hash})
        put("tracker_scrape", "opentracker", scrape)
        put("bencode_decode_strict", "opentracker-scrape", scrape)
        # BEP 3's original dictionary model, which opentracker does not send.
        put("tracker_announce", "bep3-dictionary-peers",
            b"d8:completei1e10:incompletei1e8:intervali1800e12:min intervali900e5:peersl"
            b"d2:ip9:127.0.0.17:peer id20:-XX0001-aaaaaaaaaaaa4:porti6881eed2:ip3:::14:porti6882eee"
            b"6:peers618:\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1a\xe2e")

        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.settimeout(5)

        def ask(datagram):
            udp.sendto(datagram, ("127.0.0.1", port))
            return udp.recvfrom(2048)[0]

        connected = ask(struct.pack(">QII", 0x41727101980, 0, 1))
        connection_id = connected[8:16]

        def udp_announce(hash_, peer, peer_port):
            return ask(connection_id + struct.pack(">II", 1, 2) + hash_ + peer
                       + struct.pack(">QQQIIIiH", 0, 100, 0, 2, 0, 0, -1, peer_port))

        announced = udp_announce(info_hash, b"-XX0001-dddddddddddd", 6884)
        refused = udp_announce(b"\x02" * 20, b"-XX0001-dddddddddddd", 6884)
        scraped = ask(connection_id + struct.pack(">II", 2, 3) + info_hash)

        def record(datagram):
            # Flag 1: the harness writes the transaction id in flight.
            return bytes([1]) + struct.pack(">H", len(datagram)) + datagram

        put("tracker_udp", "opentracker-announce", b"\x00" + record(connected) + record(announced))
        # opentracker answers an announce of a torrent not on its whitelist
        # with a bare 8-byte header.
        put("tracker_udp", "opentracker-not-whitelisted", b"\x00" + record(connected) + record(refused))
        # BEP 15's error action (3), which opentracker does not send here.
        put("tracker_udp", "bep15-error", b"\x00" + record(connected)
            + record(struct.pack(">II", 3, 0) + b"torrent not registered"))
        # Options: scrape (bit 1), one info-hash (bits 2..).
        put("tracker_udp", "opentracker-scrape", bytes([2 | 1 << 2]) + record(connected) + record(scraped))
    finally:
        tracker.terminate()
        tracker.wait()


def main():
    work = tempfile.mkdtemp()
    os.chmod(work, 0o755)  # opentracker drops to `nobody`
    try:
        info_hash = torrents(work)
        tracker_answers(work, info_hash)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
