#!/usr/bin/python3
"""Test helper run on the database host (Debian's boto3): look at the bucket, and build the rotation fixture.

    s3check.py ENDPOINT BUCKET keys PREFIX          -> JSON list of keys
    s3check.py ENDPOINT BUCKET head KEY             -> JSON: metadata, encryption, size
    s3check.py ENDPOINT BUCKET fill PREFIX          -> puts the synthetic two-year backups, JSON summary
    s3check.py ENDPOINT BUCKET expect PREFIX        -> JSON: the GFS kept set (default policy), computed here
    s3check.py ENDPOINT BUCKET get KEY              -> the object's body (a manifest)
    s3check.py ENDPOINT BUCKET sha256 KEY           -> JSON: SHA-256 and size of the object as downloaded
    s3check.py ENDPOINT BUCKET download KEY PATH    -> writes the object to PATH
    s3check.py ENDPOINT BUCKET uploads PREFIX       -> JSON list of the multipart uploads in progress
    s3check.py ENDPOINT BUCKET bucket -             -> JSON: versioning, public access block, encryption, lifecycle

The expected set is computed independently of module_utils/gfs.py (period buckets as sets, not the
newest-first walk), so the Molecule verify compares two implementations.
"""

import datetime as dt
import hashlib
import json
import sys
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

END = dt.datetime(2026, 11, 24, 3, 0, tzinfo=dt.UTC)
FMT = "%Y%m%dT%H%M%SZ"
UNPARSED = ["README.txt", "db1/app/latest.dump"]


def client(endpoint):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing-secret", config=Config(s3={"addressing_style": "path"}))


def every(step):
    out, t = [], END - dt.timedelta(days=730)
    while t <= END:
        out.append(t)
        t += step
    return out


def fixture():
    """{group: [timestamps]} and the keys: db1/app every 8 h (dump), db1/globals daily (dump + manifest)."""
    app, daily = every(dt.timedelta(hours=8)), every(dt.timedelta(days=1))
    keys = ["db1/app/%s.dump" % t.strftime(FMT) for t in app]
    keys += ["db1/globals/%s.%s" % (t.strftime(FMT), ext) for t in daily for ext in ("sql.gz", "manifest.json")]
    return {"db1/app": (app, [".dump"]), "db1/globals": (daily, [".sql.gz", ".manifest.json"])}, keys


def reference_kept(stamps, counts):
    periods = {"daily": "%Y%m%d", "monthly": "%Y%m"}
    kept = {max(stamps)}
    for rule, n in counts.items():
        buckets = {}
        for t in stamps:
            p = "%04d-%02d" % t.isocalendar()[:2] if rule == "weekly" else t.strftime(periods[rule])
            buckets[p] = max(buckets.get(p, t), t)
        kept |= {buckets[p] for p in sorted(buckets)[-n:]}
    return kept


def list_keys(s3, bucket, prefix):
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def main():
    endpoint, bucket, command, arg = sys.argv[1:5]
    s3 = client(endpoint)
    if command == "get":
        sys.stdout.write(s3.get_object(Bucket=bucket, Key=arg)["Body"].read().decode())
    elif command == "sha256":
        body, sha, size = s3.get_object(Bucket=bucket, Key=arg)["Body"], hashlib.sha256(), 0
        for chunk in iter(lambda: body.read(1 << 20), b""):
            sha.update(chunk)
            size += len(chunk)
        print(json.dumps({"sha256": sha.hexdigest(), "size": size}))
    elif command == "put":
        with open(sys.argv[5], "rb") as body:
            s3.put_object(Bucket=bucket, Key=arg, Body=body.read())
    elif command == "download":
        s3.download_file(bucket, arg, sys.argv[5])
    elif command == "uploads":
        print(json.dumps([u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket, Prefix=arg).get("Uploads", [])]))
    elif command == "bucket":
        print(json.dumps({
            "versioning": s3.get_bucket_versioning(Bucket=bucket).get("Status"),
            "public_access": s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"],
            "encryption": s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"],
            "lifecycle": s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"],
        }, default=str))
    elif command == "keys":
        print(json.dumps(sorted(list_keys(s3, bucket, arg))))
    elif command == "head":
        head = s3.head_object(Bucket=bucket, Key=arg)
        print(json.dumps({"metadata": head.get("Metadata", {}), "sse": head.get("ServerSideEncryption"),
                          "size": head["ContentLength"]}))
    elif command == "fill":
        _groups, keys = fixture()
        keys = [arg + k for k in keys + UNPARSED]
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda chunk: [s3.put_object(Bucket=bucket, Key=k, Body=b"x") for k in chunk],
                          [keys[i::8] for i in range(8)]))
        print(json.dumps({"objects": len(keys)}))
    elif command == "expect":
        groups, keys = fixture()
        kept = []
        for group, (stamps, exts) in groups.items():
            for t in reference_kept(stamps, {"daily": 7, "weekly": 4, "monthly": 3}):
                kept += ["%s%s/%s%s" % (arg, group, t.strftime(FMT), ext) for ext in exts]
        print(json.dumps({"kept": sorted(kept), "objects": len(keys), "unparsed": sorted(arg + k for k in UNPARSED)}))


if __name__ == "__main__":
    main()
