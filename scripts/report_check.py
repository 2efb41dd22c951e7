#!/usr/bin/env python3
"""Renders a kd report in headless Chromium and checks that it rendered.

    report_check.py REPORT.html --plots N [--png OUT.png] [--width 1280] [--height 2400]

Three runs of Debian's chromium on the file:
  1. --dump-dom: the page as the browser built it must hold exactly N <svg>
     elements (the plots), each with the class "plot";
  2. --enable-logging=stderr --v=0: no console message (the page has no
     script, so any message, e.g. a parse or security error, is a fault);
  3. --screenshot: a PNG, read here with zlib (no imaging library), must not
     be blank: the share of pixels that are neither of the page's two
     background colours (page, and white sections and plots), and
     the number of pixels in the plots' first series colour (#1f77b4), are
     printed and must pass thresholds.
Prints one "ok ..." line per check and exits 0, or prints what failed and
exits 1. Exits 77 (skip) when chromium is not installed.
"""
import argparse
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

BACKGROUND = ((0xFA, 0xFA, 0xFA), (0xFF, 0xFF, 0xFF))  # page and section/plot backgrounds (report/)
SERIES = (0x1F, 0x77, 0xB4)      # first series colour in report/svg.c


def chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def run_chromium(exe, args, url, timeout=120):
    # Running as root needs --no-sandbox; a fresh profile keeps runs apart.
    profile = tempfile.mkdtemp(prefix="kd-chromium-")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--hide-scrollbars", "--user-data-dir=" + profile] + args + [url]
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def read_png(path):
    """(width, height, rows of RGB tuples) of an 8-bit RGB or RGBA PNG."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("%s is not a PNG file" % path)
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if zlib.crc32(kind + body) != struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0]:
            raise ValueError("%s: bad CRC in chunk %r" % (path, kind))
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = ihdr
    if depth != 8 or colour not in (2, 6) or interlace != 0:
        raise ValueError("%s: only 8-bit RGB/RGBA, non-interlaced PNG is read here" % path)
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    rows = []
    for y in range(height):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 0xFF
            elif ftype == 2:
                line[i] = (line[i] + b) & 0xFF
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif ftype == 4:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pred) & 0xFF
            elif ftype != 0:
                raise ValueError("%s: unknown PNG filter %d" % (path, ftype))
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("report")
    ap.add_argument("--plots", type=int, required=True, help="the <svg> count the DOM must have")
    ap.add_argument("--png", help="keep the screenshot here (default: a temporary file)")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=2400)
    a = ap.parse_args()
    exe = chromium()
    if not exe:
        print("skip: chromium is not installed (apt-get install chromium)")
        return 77
    url = "file://" + os.path.abspath(a.report)
    failed = []

    rc, dom, err = run_chromium(exe, ["--dump-dom"], url)
    svgs = len(re.findall(r"<svg\b", dom))
    plots = len(re.findall(r"<svg\b[^>]*\bclass=\"plot\"", dom))
    if rc != 0 or svgs != a.plots or plots != a.plots:
        failed.append("DOM: %d <svg> elements (%d of class plot), expected %d (chromium exit %d)"
                      % (svgs, plots, a.plots, rc))
    else:
        print("ok dom: %d svg plots" % svgs)

    rc, _, err = run_chromium(exe, ["--enable-logging=stderr", "--v=0", "--dump-dom"], url)
    console = [l for l in err.splitlines() if ":CONSOLE" in l]
    if console:
        failed.append("console messages:\n  " + "\n  ".join(console))
    else:
        print("ok console: no messages")

    png = a.png or tempfile.mktemp(prefix="kd-report-", suffix=".png")
    rc, _, err = run_chromium(exe, ["--screenshot=" + png, "--window-size=%d,%d" % (a.width, a.height)], url)
    if rc != 0 or not os.path.exists(png):
        failed.append("no screenshot (chromium exit %d): %s" % (rc, err.strip()[-400:]))
    else:
        w, h, bpp, rows = read_png(png)
        other = series = 0
        for row in rows:
            for x in range(0, w * bpp, bpp):
                px = (row[x], row[x + 1], row[x + 2])
                if px not in BACKGROUND:
                    other += 1
                if all(abs(px[k] - SERIES[k]) <= 8 for k in range(3)):
                    series += 1
        share = other / float(w * h)
        print("screenshot %s: %dx%d, %.1f%% of pixels not background (ink), %d in the series colour"
              % (png, w, h, 100 * share, series))
        if share < 0.02 or series < 1000:
            failed.append("the screenshot looks blank: %.2f%% not background, %d series pixels" % (100 * share, series))
        else:
            print("ok screenshot: not blank")
        if not a.png:
            os.remove(png)
    for f in failed:
        print("FAILED " + f)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
