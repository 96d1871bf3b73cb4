"""Fixtures of the plugin unit tests: the collection on sys.path, and a fresh bucket on the S3 stand-in
(moto_endpoint, tests/unit/conftest.py)."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
COLLECTIONS = ROOT / ".collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))


@pytest.fixture
def s3(moto_endpoint):
    """A boto3 client on the stand-in and a fresh bucket: ``(client, bucket)``."""
    from ansible_collections.opsforge.stack.plugins.module_utils import s3_rotation  # noqa: PLC0415 (after sys.path)

    client = s3_rotation.make_client(endpoint_url=moto_endpoint, region="us-east-1", access_key="test",
                                     secret_key="test", addressing_style="path")
    bucket = f"rot-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    return client, bucket
