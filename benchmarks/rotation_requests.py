#!/usr/bin/env python3
"""S3 requests of a rotation of 10,000 backups, against the minimum (list pages + ceil(deleted / 1000)).

Starts moto's S3 server on a free loopback port (or uses --endpoint), fills a bucket with 10,000
synthetic backups over two years (5 hosts/databases x 2,000 backups every ~8.8 hours), runs the
same rotation code as the s3_backup_rotate module with the default policy (7 daily, 4 weekly,
3 monthly) and counts the HTTP requests boto3 really sends (retries included).

    .venv/bin/python benchmarks/rotation_requests.py [--objects 10000] [--endpoint http://HOST:9000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / ".collections"))

from ansible_collections.opsforge.stack.plugins.module_utils import gfs, s3_rotation


def start_moto():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto server did not start")


def synthetic_keys(total, groups=5):
    end = dt.datetime(2026, 11, 24, 3, tzinfo=dt.UTC)
    per_group = total // groups
    step = dt.timedelta(days=730) / per_group
    return [f"bench/host{g}/db{g}/{(end - i * step).strftime(gfs.DEFAULT_TIME_FORMAT)}.dump"
            for g in range(groups) for i in range(per_group)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10000)
    parser.add_argument("--endpoint", help="an S3-compatible endpoint instead of a local moto server")
    args = parser.parse_args()
    proc, endpoint = (None, args.endpoint) if args.endpoint else start_moto()
    try:
        client = s3_rotation.make_client(endpoint_url=endpoint, region="us-east-1",
                                         access_key=os.environ.get("AWS_ACCESS_KEY_ID", "bench"),
                                         secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "bench"),
                                         addressing_style="path")
        bucket = f"rotation-bench-{int(time.time())}"
        client.create_bucket(Bucket=bucket)
        keys = synthetic_keys(args.objects)
        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda chunk: [client.put_object(Bucket=bucket, Key=k, Body=b"x") for k in chunk],
                          [keys[i::8] for i in range(8)]))
        fill = time.monotonic() - t0
        counter = s3_rotation.attach_counter(client)
        t0 = time.monotonic()
        result = s3_rotation.rotate(client, bucket, "bench", gfs.Policy())
        took = time.monotonic() - t0
        minimum = result["list_requests"] + math.ceil(result["deleted_count"] / 1000)
        print(f"objects: {len(keys)} (filled in {fill:.1f} s), kept {result['kept_count']}, "
              f"deleted {result['deleted_count']}, rotation took {took:.2f} s")
        print(f"requests: {counter.total} ({counter.by_operation}); minimum: {minimum} "
              f"(list pages {result['list_requests']} + ceil({result['deleted_count']}/1000))")
        return 0 if counter.total == minimum else 1
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
