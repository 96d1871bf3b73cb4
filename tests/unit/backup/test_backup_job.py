"""Pieces of the backup role's on-host job (roles/backup/files/opsforge_backup.py) that need no database.

The job imports gfs.py and s3_rotation.py from its own directory on the host; here they come from
plugins/module_utils, the files the role copies (tasks/job.yml), so this also proves they fit.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "plugins" / "module_utils"))
_spec = importlib.util.spec_from_file_location("opsforge_backup", ROOT / "roles/backup/files/opsforge_backup.py")
job = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(job)

CFG = {
    "host": "db1",
    "s3": {"bucket": "b", "prefix": "backups", "safety_prefix": "backups-safety"},
    "postgresql": {"enabled": True, "databases": ["app", "shop"], "globals": True},
    "redis": {"enabled": True, "port": 6379},
    "retention": {"enabled": True},
}


@pytest.mark.parametrize("compress", [False, True])
def test_hashing_reader_streams_hashes_and_compresses(compress):
    data = b"".join(b"row %d\n" % i for i in range(300000))
    reader = job.HashingReader(io.BytesIO(data), compress=compress)
    out = b""
    while chunk := reader.read(65536):
        out += chunk
    assert (gzip.decompress(out) if compress else out) == data
    assert reader.sha256.hexdigest() == hashlib.sha256(out).hexdigest()
    assert reader.size == len(out) and reader.raw_size == len(data)
    assert not compress or len(out) < len(data) / 3


def test_keys_sort_by_time_and_match_the_rotation_pattern():
    key = job.final_key(CFG, "app", "dump", "20261124T021500Z")
    assert key == "backups/db1/app/20261124T021500Z.dump"
    assert job.final_key(CFG, "app", "dump", "20261124T021500Z", safety=True).startswith("backups-safety/db1/app/")
    regex = job.gfs.compile_pattern(job.gfs.DEFAULT_KEY_PATTERN)
    for ext in ("dump", "sql.gz", "rdb.gz", "manifest.json"):
        parsed = job.gfs.parse_key("db1/app/20261124T021500Z.%s" % ext, regex)
        assert parsed[0] == ("db1", "app")
        assert job.gfs.parse_key("20261124T021500Z.%s" % ext, job.gfs.compile_pattern(job.GROUP_PATTERN))


def test_targets_and_unknown_targets():
    names = [t[0] for t in job.targets(CFG)]
    assert names == ["postgresql:app", "postgresql:shop", "postgresql:_globals", "redis"]
    assert job.targets(CFG, {"redis"}) == [("redis", "redis-6379")]
    with pytest.raises(job.BackupError, match="unknown target"):
        job.targets(CFG, {"postgresql:nope"})


def test_one_backup_per_database_at_a_time(tmp_path):
    cfg = dict(CFG, lock_dir=str(tmp_path))
    with job.lock(cfg, "postgresql:app"):
        with pytest.raises(job.BackupError, match="another backup of postgresql:app is running"), \
                job.lock(cfg, "postgresql:app"):
            pass
        with job.lock(cfg, "postgresql:shop"):
            pass


def test_the_job_ships_the_modules_own_retention_code():
    tasks = (ROOT / "roles/backup/tasks/job.yml").read_text()
    assert "plugins/module_utils/{{ item }}" in tasks and "[gfs.py, s3_rotation.py]" in tasks
    assert job.gfs.__file__ == str(ROOT / "plugins/module_utils/gfs.py")


def test_staging_name_fits_postgresql_63_byte_names():
    assert job.staging_name("app") == "app_opsforge_restoring"
    long = "é" * 40  # 80 bytes
    name = job.staging_name(long)
    assert len(name.encode()) <= 63 and name.endswith("_opsforge_restoring")
    assert job.staging_name("app", "_opsforge_replaced") == "app_opsforge_replaced"


def test_restore_verdict_accepts_only_a_copy_equal_to_its_manifest():
    manifest = {"sha256": "abc", "row_counts": {"public.items": 3, "public.orders": 2}}
    assert job.restore_verdict(manifest, "abc", {"public.items": 3, "public.orders": 2}) is None
    bad_sum = job.restore_verdict(manifest, "abd", {"public.items": 3, "public.orders": 2})
    assert "checksum: manifest abc, read abd" in bad_sum
    short = job.restore_verdict(manifest, "abc", {"public.items": 3})
    assert short == "row counts differ for public.orders"
    extra = job.restore_verdict(manifest, "abc", {"public.items": 3, "public.orders": 2, "public.x": 0})
    assert "public.x" in extra


def test_redis_restore_refuses_a_replica_and_accepts_a_master():
    refusal = job.redis_restore_refusal({"role": "slave", "master_host": "10.0.0.5", "master_port": "6379"})
    assert refusal.startswith("this Redis is a replica of 10.0.0.5:6379: restore its master instead")
    assert refusal.endswith("nothing was changed")
    assert job.redis_restore_refusal({"role": "master", "connected_slaves": "0"}) is None


def test_redis_restore_refuses_a_master_that_sentinel_watches():
    clients = (
        "id=3 addr=10.0.0.21:41234 laddr=10.0.0.20:6379 fd=9 name=sentinel-5f1c2a9b-cmd age=80 db=0 cmd=ping\n"
        "id=4 addr=10.0.0.21:41236 laddr=10.0.0.20:6379 fd=10 name=sentinel-5f1c2a9b-pubsub age=80 db=0 cmd=subscribe\n"
        "id=5 addr=10.0.0.22:40100 laddr=10.0.0.20:6379 fd=11 name=sentinel-77aa01cd-cmd age=79 db=0 cmd=info\n"
        "id=9 addr=127.0.0.1:50000 laddr=127.0.0.1:6379 fd=12 name= age=0 db=0 cmd=client|list\n"
    )
    refusal = job.redis_restore_refusal({"role": "master", "connected_slaves": "2"}, clients)
    assert refusal.startswith("2 Sentinel(s) watch this master (connections from sentinel-5f1c2a9b, sentinel-77aa01cd)")
    assert "Stop redis-sentinel on every Sentinel host" in refusal and refusal.endswith("nothing was changed")
    assert job.redis_restore_refusal({"role": "master"}, clients.splitlines()[-1]) is None
