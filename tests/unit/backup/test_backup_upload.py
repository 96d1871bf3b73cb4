"""The job's upload on a real S3 stand-in (moto's server): S3's own checksum travels with the object."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import os
import sys
import uuid
from pathlib import Path

import boto3
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "plugins" / "module_utils"))
_spec = importlib.util.spec_from_file_location("opsforge_backup_upload", ROOT / "roles/backup/files/opsforge_backup.py")
job = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(job)


class Stream:
    """A pipe-like reader (no seek, no tell), as pg_dump's stdout."""

    def __init__(self, data):
        self._buf = io.BytesIO(data)

    def read(self, size=-1):
        return self._buf.read(size)


def _client(endpoint):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                        aws_secret_access_key="test", config=Config(s3={"addressing_style": "path"}))


def _cfg(bucket, algorithm):
    return {"s3": {"bucket": bucket, "sse": "", "multipart_chunk_mb": 5, "checksum_algorithm": algorithm}}


def test_a_single_part_object_carries_the_sha256_of_its_body(moto_endpoint):
    s3, bucket = _client(moto_endpoint), f"up-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    data = os.urandom(300_000)
    reader = job.upload(_cfg(bucket, "SHA256"), s3, Stream(data), "db1/app/x.dump", metadata={"host": "db1"})
    head = s3.head_object(Bucket=bucket, Key="db1/app/x.dump", ChecksumMode="ENABLED")
    assert reader.sha256.hexdigest() == hashlib.sha256(data).hexdigest()
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert head["Metadata"] == {"host": "db1"}


def test_a_multipart_object_carries_the_composite_of_its_parts(moto_endpoint):
    s3, bucket = _client(moto_endpoint), f"up-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    data = os.urandom(12 * 1024 * 1024)
    job.upload(_cfg(bucket, "SHA256"), s3, Stream(data), "db1/app/big.dump")
    attrs = s3.get_object_attributes(Bucket=bucket, Key="db1/app/big.dump",
                                     ObjectAttributes=["Checksum", "ObjectParts"])
    parts = [data[i:i + 5 * 1024 * 1024] for i in range(0, len(data), 5 * 1024 * 1024)]
    composite = hashlib.sha256(b"".join(hashlib.sha256(p).digest() for p in parts)).digest()
    assert attrs["Checksum"]["ChecksumSHA256"].split("-")[0] == base64.b64encode(composite).decode()


def test_no_checksum_when_switched_off(moto_endpoint):
    s3, bucket = _client(moto_endpoint), f"up-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    job.upload(_cfg(bucket, ""), s3, Stream(b"x" * 1000), "db1/app/y.dump")
    head = s3.head_object(Bucket=bucket, Key="db1/app/y.dump", ChecksumMode="ENABLED")
    assert "ChecksumSHA256" not in head
