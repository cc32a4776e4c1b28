#!/usr/bin/env python3
"""What a lifeboat repository gained since a listing of its files was taken, by kind.

    python3 bench/growth.py REPO BEFORE

BEFORE holds the repository's file paths (relative to REPO, one per line) as they were
before the backup. Prints one line of `key=value` pairs (bytes and counts): manifests,
index files, pack trailers, delta blobs and whole blobs among the new files. Reads the
zstd-compressed JSON of index files with the `zstd` command (Debian's zstd package).
"""

import json
import os
import subprocess
import sys


def decode(path):
    with open(path, "rb") as f:
        body = f.read()
    if body[:4] == b"\x28\xb5\x2f\xfd":
        body = subprocess.run(["zstd", "-dcq"], input=body, capture_output=True, check=True).stdout
    return json.loads(body)


def main():
    repo, before_list = sys.argv[1], sys.argv[2]
    with open(before_list) as f:
        before = {line.strip() for line in f if line.strip()}
    new = []
    for root, _, files in os.walk(repo):
        for name in files:
            rel = os.path.relpath(os.path.join(root, name), repo)
            if rel not in before:
                new.append(rel)
    out = {"manifests": 0, "index": 0, "trailers": 0, "deltas": 0, "delta_blobs": 0,
           "whole": 0, "whole_blobs": 0, "other": 0}
    packs = {}
    for rel in new:
        size = os.path.getsize(os.path.join(repo, rel))
        top = rel.split(os.sep, 1)[0]
        if top == "snapshots":
            out["manifests"] += size
        elif top == "index":
            out["index"] += size
            for pack in decode(os.path.join(repo, rel))["packs"]:
                packs[pack["id"]] = pack
        elif top != "data":
            out["other"] += size
    for pack in packs.values():
        blobs = pack["blobs"]
        out["trailers"] += pack["size"] - sum(b["length"] for b in blobs)
        for b in blobs:
            bytes_key, count_key = ("deltas", "delta_blobs") if b.get("base") else ("whole", "whole_blobs")
            out[bytes_key] += b["length"]
            out[count_key] += 1
    print(" ".join(f"{k}={v}" for k, v in out.items()))


if __name__ == "__main__":
    main()
