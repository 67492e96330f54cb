#!/usr/bin/env python3
"""The cron-script peer for tools/bench/nightly_bench.sh.

What a CRM team writes when it syncs a nightly export into Adobe Target by
hand: Python 3's standard library only, read the CSV, write Target's Bulk
Profile Update v2 batch files (at most 500,000 rows, under 50 MB as
encoded), POST each to /m2/<client>/v2/profile/batchUpdate, then follow
each answer's batchStatus URL until it says complete.  No outbox, no
retries beyond polling, nothing kept between runs: it resends the whole
file every night.

    peer_cron.py CSV BASE_URL CLIENT [--max-rows N] [--max-bytes N]

Prints one line: rows, batches, bytes sent, seconds.  Exits 1 when a
batch is refused or never completes.
"""
import argparse
import csv
import re
import sys
import time
import urllib.parse
import urllib.request

STATUS = re.compile(r"<batchStatus>([^<]*)</batchStatus>")
STATE = re.compile(r"<status>([^<]*)</status>")


def batches(path, max_rows, max_bytes):
    """Yields encoded batch bodies (bytes) of the export, header first."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader)
        head = "batch=" + ",".join(urllib.parse.quote(h, safe="") for h in header) + "\n"
        rows, size = [], len(head)
        for row in reader:
            line = ",".join(urllib.parse.quote(c, safe="") for c in row) + "\n"
            if rows and (len(rows) >= max_rows or size + len(line) >= max_bytes):
                yield (head + "".join(rows)).encode("ascii"), len(rows)
                rows, size = [], len(head)
            rows.append(line)
            size += len(line)
        if rows:
            yield (head + "".join(rows)).encode("ascii"), len(rows)


def post(url, body):
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return r.read().decode("utf-8", "replace")


def get(url):
    with urllib.request.urlopen(url, timeout=60) as r:
        return r.read().decode("utf-8", "replace")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("base_url")
    ap.add_argument("client")
    ap.add_argument("--max-rows", type=int, default=500000)
    ap.add_argument("--max-bytes", type=int, default=49000000)
    a = ap.parse_args()
    t0 = time.monotonic()
    url = "%s/m2/%s/v2/profile/batchUpdate" % (a.base_url.rstrip("/"), a.client)
    pending, rows, sent = [], 0, 0
    for body, n in batches(a.csv, a.max_rows, a.max_bytes):
        answer = post(url, body)
        m = STATUS.search(answer)
        if "<success>true</success>" not in answer or not m or not m.group(1):
            sys.exit("peer: batch refused: %s" % answer[:300])
        pending.append(m.group(1))
        rows += n
        sent += len(body)
    n_batches = len(pending)
    wait = 0.1
    deadline = time.monotonic() + 3600
    while pending:
        time.sleep(wait)
        wait = min(wait * 2, 1.0)
        still = []
        for status_url in pending:
            m = STATE.search(get(status_url))
            state = m.group(1) if m else "?"
            if state == "stuck":
                sys.exit("peer: batch stuck: %s" % status_url)
            if state != "complete":
                still.append(status_url)
        pending = still
        if time.monotonic() > deadline:
            sys.exit("peer: batches did not complete within an hour")
    print("peer: rows=%d batches=%d bytes=%d seconds=%.3f"
          % (rows, n_batches, sent, time.monotonic() - t0))


if __name__ == "__main__":
    main()
