"""The S3 side against a real S3-compatible server (moto's server mode on loopback, see conftest.py).

Thousands of synthetic backups spanning two years, more than 1,000 keys so that both the listing
(pages of 1,000) and the deletion (batches of 1,000) really paginate. Requests are counted on the
wire (boto3's before-send event), not by the code under test.
"""

from __future__ import annotations

import datetime as dt
import math
from concurrent.futures import ThreadPoolExecutor

import pytest
from ansible_collections.opsforge.stack.plugins.module_utils import gfs, s3_rotation
from test_gfs import END, every, reference_kept

PREFIX = "pg/"
FMT = gfs.DEFAULT_TIME_FORMAT
APP = every(dt.timedelta(hours=8))  # 2,191 backups of db1/app over two years
GLOBALS = every(dt.timedelta(days=1))  # 731 backups of db1/globals, each a dump and a manifest
UNPARSED = ["pg/README.txt", "pg/db1/app/latest.dump", "pg/db1/app/2026-11-24.dump"]


def _keys():
    keys = [f"{PREFIX}db1/app/{t.strftime(FMT)}.dump" for t in APP]
    for t in GLOBALS:
        keys += [f"{PREFIX}db1/globals/{t.strftime(FMT)}.dump", f"{PREFIX}db1/globals/{t.strftime(FMT)}.manifest.json"]
    return keys + UNPARSED


def _expected_kept(counts, min_keep=1):
    kept = {f"{PREFIX}db1/app/{t.strftime(FMT)}.dump" for t in reference_kept(APP, counts, min_keep)}
    for t in reference_kept(GLOBALS, counts, min_keep):
        kept |= {f"{PREFIX}db1/globals/{t.strftime(FMT)}.dump", f"{PREFIX}db1/globals/{t.strftime(FMT)}.manifest.json"}
    return kept


def _fill(client, bucket, keys):
    def put(chunk):
        for k in chunk:
            client.put_object(Bucket=bucket, Key=k, Body=b"x")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, [keys[i::8] for i in range(8)]))


def _all_keys(client, bucket):
    return set(s3_rotation.list_keys(client, bucket, "")[0])


@pytest.fixture(scope="module")
def keys():
    return _keys()


@pytest.fixture
def filled(s3, keys):
    """A bucket of its own, for the tests that delete."""
    client, bucket = s3
    _fill(client, bucket, keys)
    return client, bucket


@pytest.fixture(scope="module")
def shared(moto_endpoint, keys):
    """One filled bucket for the tests that only read (filling takes seconds)."""
    client = s3_rotation.make_client(endpoint_url=moto_endpoint, region="us-east-1", access_key="test",
                                     secret_key="test", addressing_style="path")
    client.create_bucket(Bucket="rotation-read-only")
    _fill(client, "rotation-read-only", keys)
    return client, "rotation-read-only"


def test_listing_is_complete_and_paginated(shared, keys):
    client, bucket = shared
    assert len(keys) > 3000
    listed, pages = s3_rotation.list_keys(client, bucket, PREFIX)
    assert sorted(listed) == sorted(keys) and pages == math.ceil(len(keys) / 1000)


def test_check_mode_deletes_nothing_and_plans_exactly(shared, keys):
    client, bucket = shared
    counter = s3_rotation.attach_counter(client)
    result = s3_rotation.rotate(client, bucket, "pg", gfs.Policy(), check_mode=True)
    expected = _expected_kept(dict(daily=7, weekly=4, monthly=3))
    assert set(result["kept"]) == expected
    assert set(result["deleted"]) == set(keys) - expected - set(UNPARSED)
    assert sorted(result["unparsed"]) == sorted(UNPARSED)
    assert result["changed"] and result["delete_requests"] == 0
    assert counter.by_operation == {"ListObjectsV2": result["list_requests"]}
    assert _all_keys(client, bucket) == set(keys)


@pytest.mark.parametrize(("counts", "batch_size"), [
    (dict(daily=7, weekly=4, monthly=3), 1000),
    (dict(hourly=24, daily=30, weekly=12, monthly=12, yearly=2), 333),
])
def test_rotation_keeps_exactly_the_gfs_set_with_minimal_requests(filled, keys, counts, batch_size):
    client, bucket = filled
    policy = gfs.Policy(**(dict.fromkeys(gfs.RULES, 0) | counts))
    counter = s3_rotation.attach_counter(client)
    result = s3_rotation.rotate(client, bucket, PREFIX, policy, batch_size=batch_size)
    sent = dict(counter.by_operation)
    expected = _expected_kept(counts)
    remaining = _all_keys(client, bucket)
    assert remaining == expected | set(UNPARSED)
    assert set(result["deleted"]) == set(keys) - remaining
    assert result["deleted_count"] > 1000, "the test must exercise more than one delete batch"
    pages = math.ceil(len(keys) / 1000)
    deletes = math.ceil(result["deleted_count"] / batch_size)
    assert sent == {"ListObjectsV2": pages, "DeleteObjects": deletes}
    if batch_size == 1000:
        assert sum(sent.values()) == result["minimum_requests"] == pages + math.ceil(result["deleted_count"] / 1000)
    # idempotent: a second run deletes nothing and sends only the listing
    again = s3_rotation.rotate(client, bucket, PREFIX, policy)
    assert not again["changed"] and again["deleted"] == [] and again["delete_requests"] == 0
    assert set(again["kept"]) == expected


def test_missing_bucket_is_a_listing_error(s3):
    client, _bucket = s3
    with pytest.raises(s3_rotation.ListingError, match="NoSuchBucket"):
        s3_rotation.rotate(client, "no-such-bucket-here", PREFIX, gfs.Policy())


class _StubClient:
    """Only for failures a healthy server never produces: a broken listing, refused keys."""

    def __init__(self, pages, refuse=()):
        self.pages = list(pages)
        self.refuse = set(refuse)
        self.deleted = []

    def list_objects_v2(self, **kwargs):
        return self.pages.pop(0)

    def delete_objects(self, Bucket, Delete):
        errors = [{"Key": o["Key"], "Code": "AccessDenied", "Message": "Access Denied"}
                  for o in Delete["Objects"] if o["Key"] in self.refuse]
        self.deleted += [o["Key"] for o in Delete["Objects"] if o["Key"] not in self.refuse]
        return {"Errors": errors} if errors else {}


def _page(keys, truncated=False, token=None):
    page = {"Contents": [{"Key": k} for k in keys], "KeyCount": len(keys), "IsTruncated": truncated}
    if token:
        page["NextContinuationToken"] = token
    return page


@pytest.mark.parametrize("pages", [
    [_page(["a"], truncated=True)],  # truncated without a token
    [_page(["a"], True, "t1"), _page(["b"], True, "t1")],  # the same token twice
    [dict(_page(["a"]), KeyCount=2)],  # fewer keys than announced
])
def test_incomplete_listing_is_refused_before_any_delete(pages):
    client = _StubClient(pages)
    with pytest.raises(s3_rotation.ListingError, match="refusing to rotate"):
        s3_rotation.rotate(client, "b", "", gfs.Policy())
    assert client.deleted == []


def test_refused_keys_are_reported_and_the_rest_deleted():
    stamps = every(dt.timedelta(days=1))
    keys = [f"h/d/{t.strftime(FMT)}.dump" for t in stamps]
    old = keys[:5]
    client = _StubClient([_page(keys)], refuse=old)
    with pytest.raises(s3_rotation.DeleteError) as info:
        s3_rotation.rotate(client, "b", "", gfs.Policy(), batch_size=100)
    assert sorted(e["key"] for e in info.value.errors) == sorted(old)
    assert {e["code"] for e in info.value.errors} == {"AccessDenied"}
    assert info.value.result["deleted_count"] == len(keys) - 11 - 5 == len(client.deleted)
    assert END.strftime(FMT) in keys[-1] and keys[-1] not in client.deleted


def test_batch_size_is_capped():
    with pytest.raises(s3_rotation.S3RotationError):
        s3_rotation.delete_keys(_StubClient([]), "b", ["k"], batch_size=1001)
