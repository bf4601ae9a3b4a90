"""Drives Debian's chromium through chromedriver with plain WebDriver HTTP
(urllib only) against a running `rustico daemon`.

argv: base URL (http://127.0.0.1:PORT), .torrent path, expected torrent
name, screenshot path (or ""), chromedriver port.

Prints one line per checked fact (the Rust test asserts on them) and exits
non-zero with a message when a check fails or times out.
"""
import base64
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

BASE, TORRENT, NAME, SHOT, DRIVER_PORT = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
WD = "http://127.0.0.1:%d" % DRIVER_PORT
# WebDriver's key for an element reference.
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(WD + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=200) as r:
            return json.loads(r.read() or b"{}").get("value")
    except urllib.error.HTTPError as e:
        raise SystemExit("webdriver %s %s: %s %s" % (method, path, e.code, e.read()[:500]))


def wait(what, fn, timeout=60):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        last = fn()
        if last:
            return last
        time.sleep(0.2)
    raise SystemExit("timed out waiting for %s (last: %r)" % (what, last))


driver = subprocess.Popen(["chromedriver", "--port=%d" % DRIVER_PORT],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
session = None
try:
    def ready():
        try:
            return call("GET", "/status")["ready"]
        except (OSError, SystemExit):
            return False
    wait("chromedriver", ready, 30)
    caps = {"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        # Return once the DOM is ready; the checks below poll for content.
        "pageLoadStrategy": "eager",
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1100,760",
                     "--no-first-run", "--disable-extensions", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--disable-default-apps"],
        },
        "goog:loggingPrefs": {"browser": "ALL"},
    }}}
    session = call("POST", "/session", caps)["sessionId"]
    S = "/session/" + session

    def js(script, *args):
        return call("POST", S + "/execute/sync", {"script": script, "args": list(args)})

    def find(css):
        return call("POST", S + "/element", {"using": "css selector", "value": css})[ELEMENT]

    def click(css):
        # The page redraws its tables every second: an element found just
        # before a redraw is gone when clicked ("stale element reference",
        # seen in CI on the resume button). Find it again and retry.
        for attempt in range(20):
            try:
                call("POST", S + "/element/%s/click" % find(css), {})
                return
            except SystemExit as e:
                if "stale element" not in str(e) or attempt == 19:
                    raise
                time.sleep(0.1)

    call("POST", S + "/url", {"url": BASE + "/"})
    # Add the torrent through the page's upload control.
    call("POST", S + "/element/%s/value" % find("#add-file"), {"text": TORRENT})
    click("#add-button")
    print("ADDED", wait("the add result", lambda: js(
        "return document.getElementById('add-result').textContent")), flush=True)

    peer = wait("a peer row with address and client", lambda: js("""
        for (const r of document.querySelectorAll('#peers tbody tr')) {
          const a = r.cells[0].textContent, c = r.cells[1].textContent;
          if (a.includes(':') && c.length > 0) return [a, c, r.cells[2].textContent];
        }
        return null;"""))
    print("PEER", peer[0], "|", peer[1], "|", peer[2], flush=True)
    def row(field):
        return js("""
            for (const r of document.querySelectorAll('#torrents tbody tr')) {
              if (r.querySelector('.name').textContent === arguments[0])
                return r.querySelector(arguments[1]).textContent;
            }
            return null;""", NAME, field)

    if SHOT:
        # Mid-download, with a rate shown: the README's picture.
        def midway():
            label = row(".bar-label") or "0"
            return 30.0 <= float(label.rstrip("%")) and (label == "100.0%" or row("td:nth-child(4)") != "\u2013")
        wait("a download in progress", midway)
        png = call("GET", S + "/screenshot")
        open(SHOT, "wb").write(base64.b64decode(png))
        print("SCREENSHOT", SHOT, flush=True)
    print("PROGRESS", wait("100%", lambda: row(".bar-label") == "100.0%" and row(".bar-label")), flush=True)

    click("#tabs button[data-tab=pieces]")
    pieces = wait("a full piece map", lambda: js("""
        const c = document.getElementById('piecemap');
        if (!c.dataset.total || c.dataset.have !== c.dataset.total) return null;
        const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const want = getComputedStyle(document.documentElement).getPropertyValue('--have').trim();
        const probe = document.createElement('canvas').getContext('2d');
        probe.fillStyle = want; probe.fillRect(0, 0, 1, 1);
        const w = probe.getImageData(0, 0, 1, 1).data;
        for (let i = 0; i < px.length; i += 4)
          if (px[i] !== w[0] || px[i + 1] !== w[1] || px[i + 2] !== w[2]) return null;
        return [Number(c.dataset.have), Number(c.dataset.total), c.width];"""))
    print("PIECES", pieces[0], "of", pieces[1], "pixels", pieces[2], flush=True)

    click("button.pause")
    print("PAUSED", wait("Stopped", lambda: row(".state") == "Stopped" and row(".state")), flush=True)
    click("button.resume")
    print("RESUMED", wait("Seeding", lambda: row(".state") == "Seeding" and row(".state")), flush=True)

    logs = call("POST", S + "/se/log", {"type": "browser"}) or []
    errors = [l for l in logs if l.get("level") == "SEVERE"]
    print("CONSOLE_ERRORS", len(errors), json.dumps(errors)[:2000], flush=True)

    # Transmission's own web client, from the configured web root.
    t0 = time.monotonic()
    call("POST", S + "/url", {"url": BASE + "/transmission/web/"})
    print("NAVIGATION", round(time.monotonic() - t0, 1), file=sys.stderr, flush=True)
    listed = wait("the torrent in Transmission's web client", lambda: js("""
        for (const li of document.querySelectorAll('#torrent_list .torrent')) {
          const n = li.querySelector('.torrent_name'), p = li.querySelector('.torrent_progress_bar.complete');
          if (n && p && n.textContent === arguments[0] && p.style.width === '100%')
            return [n.textContent, 'progress bar ' + p.style.width];
        }
        return null;""", NAME))
    print("TRANSMISSION_WEB", listed[0], "|", listed[1], flush=True)
except SystemExit:
    if session:
        try:
            print("PAGE TEXT:", js("return document.body.innerText"), file=sys.stderr)
            print("BROWSER LOG:", call("POST", S + "/se/log", {"type": "browser"}), file=sys.stderr)
        except SystemExit:
            pass
    raise
finally:
    if session:
        try:
            call("DELETE", "/session/" + session)
        except SystemExit:
            pass
    driver.terminate()
    driver.wait(10)
