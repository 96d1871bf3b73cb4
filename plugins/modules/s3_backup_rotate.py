#!/usr/bin/python
# Copyright: opsforge.stack developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: s3_backup_rotate
short_description: Delete old backups under an S3 prefix by a grandfather-father-son policy
version_added: 0.1.0
description:
  - Lists every object under O(prefix) (paginated, any number of objects), parses the group (for example
    host and database) and the timestamp from each key with O(key_pattern) and O(time_format), decides what
    to keep by the grandfather-father-son (GFS) policy and deletes the rest with C(DeleteObjects), up to
    1,000 keys per request.
  - A backup is every key sharing one group and one timestamp, so a dump and its manifest are kept or
    deleted together.
  - For each rule (O(keep_hourly), O(keep_daily), O(keep_weekly), O(keep_monthly), O(keep_yearly)) with a
    count N, the newest backup of each of the N most recent UTC hours, days, ISO weeks, months or years
    that have a backup is kept. The rules are independent; one backup can satisfy several.
  - Safety rules. The newest backup of every group is always kept, and so are the O(min_keep) newest.
    Keys the pattern or the time format cannot parse are left alone and reported in RV(unparsed).
    If the listing fails or comes back incomplete, the module fails without deleting anything.
  - The policy lives in the collection's C(module_utils/gfs.py), pure functions shared with the on-host
    job of the P(opsforge.stack.backup#role) role, so the scheduled job and this module decide alike.
author:
  - opsforge.stack developers (@opsforge)
requirements:
  - boto3 >= 1.26
  - botocore >= 1.29
attributes:
  check_mode:
    support: full
    description: Lists and plans, returns exactly the keys that would be deleted, sends no delete request.
  diff_mode:
    support: full
    description: Before is every parsed key, after is the kept keys.
  idempotent:
    support: full
    description: A second run with the same policy finds nothing more to delete (unless time moved on).
options:
  bucket:
    description: Name of the bucket.
    type: str
    required: true
  prefix:
    description:
      - The folder the backups are under. V(backups) and V(backups/) are the same; empty means the whole bucket.
      - The prefix is removed from each key before O(key_pattern) is applied.
    type: str
    default: ""
  key_pattern:
    description:
      - Python regular expression applied (C(re.search)) to each key with O(prefix) removed.
      - It needs a named group C(ts) with the timestamp; every other named group is part of the group key
        that backups are rotated within (by default C(host) and C(db)).
    type: str
    default: '^(?P<host>[^/]+)/(?P<db>[^/]+)/(?P<ts>\d{8}T\d{6}Z)(?:\.[^/]*)?$'
  time_format:
    description:
      - C(strptime) format of the C(ts) group. Times without a zone are taken as UTC.
    type: str
    default: '%Y%m%dT%H%M%SZ'
  complete_suffix:
    description:
      - When set, a backup counts only when one of its keys (same group and timestamp) ends with this suffix,
        for example C(.manifest.json). The keys of a backup without one (an upload that failed before its
        manifest) are left alone, reported in RV(incomplete), and take no place in the policy.
    type: str
  keep_hourly:
    description: Number of most recent hours (that have a backup) whose newest backup is kept.
    type: int
    default: 0
  keep_daily:
    description: Number of most recent days (that have a backup) whose newest backup is kept.
    type: int
    default: 7
  keep_weekly:
    description: Number of most recent ISO weeks (that have a backup) whose newest backup is kept.
    type: int
    default: 4
  keep_monthly:
    description: Number of most recent months (that have a backup) whose newest backup is kept.
    type: int
    default: 3
  keep_yearly:
    description: Number of most recent years (that have a backup) whose newest backup is kept.
    type: int
    default: 0
  min_keep:
    description:
      - The newest O(min_keep) backups of every group are kept whatever the policy says.
      - The newest backup of a group is always kept, even with V(0).
    type: int
    default: 1
  batch_size:
    description: Keys per C(DeleteObjects) request, at most 1000 (the S3 limit).
    type: int
    default: 1000
  return_keys:
    description:
      - Return the kept and deleted key lists. With V(false) only counts and the per-group summary come back
        (useful with hundreds of thousands of objects).
    type: bool
    default: true
  endpoint_url:
    description: URL of an S3-compatible endpoint (MinIO, Ceph, moto, ...). Empty means AWS.
    type: str
    aliases: [endpoint]
  region:
    description: Region of the bucket.
    type: str
  access_key:
    description: Access key id. Without it, boto3's own chain is used (environment, O(profile), instance role).
    type: str
    aliases: [aws_access_key_id]
  secret_key:
    description: Secret access key.
    type: str
    aliases: [aws_secret_access_key]
  session_token:
    description: Session token of temporary credentials.
    type: str
  profile:
    description: Named profile of the AWS shared configuration.
    type: str
  addressing_style:
    description: Bucket addressing. V(path) suits most S3-compatible stores.
    type: str
    choices: [auto, path, virtual]
    default: auto
  validate_certs:
    description: Verify the endpoint's TLS certificate.
    type: bool
    default: true
  ca_bundle:
    description: CA bundle file to verify the endpoint with.
    type: path
notes:
  - Requests made are returned (RV(requests)); the minimum for a rotation is the number of list pages plus
    one C(DeleteObjects) per started 1,000 deleted keys, and that is what the module sends.
  - Deleting from a versioned bucket adds delete markers; old versions are then removed by the bucket's
    lifecycle rules (see the collection's C(s3_bucket.yml) playbook).
seealso:
  - name: Grandfather-father-son backup
    description: The rotation scheme.
    link: https://en.wikipedia.org/wiki/Backup_rotation_scheme#Grandfather-father-son
  - module: amazon.aws.s3_object
  - module: amazon.aws.s3_bucket
"""

EXAMPLES = r"""
- name: Show what the default policy (7 daily, 4 weekly, 3 monthly) would delete
  opsforge.stack.s3_backup_rotate:
    bucket: backups
    prefix: postgres
    endpoint_url: https://s3.example.net
  check_mode: true
  diff: true
  register: rotation_plan

- name: Rotate, keeping a year of monthly backups and a few yearly ones
  opsforge.stack.s3_backup_rotate:
    bucket: backups
    prefix: postgres
    keep_daily: 14
    keep_weekly: 8
    keep_monthly: 12
    keep_yearly: 5
    min_keep: 3
    access_key: "{{ vault_backup_access_key }}"
    secret_key: "{{ vault_backup_secret_key }}"
  register: rotation

- name: Keys named differently, e.g. nightly/db1-2026-11-24_0300.sql.gz
  opsforge.stack.s3_backup_rotate:
    bucket: legacy-dumps
    prefix: nightly
    key_pattern: '^(?P<db>[a-z0-9_]+)-(?P<ts>\d{4}-\d{2}-\d{2}_\d{4})\.sql\.gz$'
    time_format: '%Y-%m-%d_%H%M'
    return_keys: false
"""

RETURN = r"""
kept:
  description: Keys kept (parsed and chosen by the policy). Empty when O(return_keys=false).
  returned: success
  type: list
  elements: str
  sample: [postgres/db1/app/20261124T030000Z.dump, postgres/db1/app/20261124T030000Z.manifest.json]
deleted:
  description: Keys deleted, or in check mode the keys that would be deleted. Empty when O(return_keys=false).
  returned: success
  type: list
  elements: str
  sample: [postgres/db1/app/20260301T030000Z.dump]
unparsed:
  description: Keys the pattern or time format could not parse; left alone.
  returned: success
  type: list
  elements: str
  sample: [postgres/README.txt]
kept_count:
  description: Number of kept keys.
  returned: success
  type: int
  sample: 42
deleted_count:
  description: Number of deleted keys (would-be deleted in check mode).
  returned: success
  type: int
  sample: 1200
unparsed_count:
  description: Number of keys left alone because they could not be parsed.
  returned: success
  type: int
  sample: 1
incomplete:
  description: Keys left alone because their backup has no key ending with O(complete_suffix).
  returned: success
  type: list
  elements: str
  sample: ["db1/app/20261124T030000Z.sql.gz"]
incomplete_count:
  description: Number of keys in RV(incomplete).
  returned: success
  type: int
  sample: 1
listed_count:
  description: Number of keys the listing returned.
  returned: success
  type: int
  sample: 1243
groups:
  description: Per group (the pattern's groups joined with C(/)) the backups found, kept and deleted.
  returned: success
  type: dict
  sample: {"db1/app": {"backups": 700, "kept": 14, "deleted": 686, "newest": "2026-11-24T03:00:00Z",
           "oldest_kept": "2026-08-31T03:00:00Z"}}
requests:
  description:
    - S3 requests sent. C(list) pages, C(delete) requests, C(minimum) is list pages plus one per started
      1,000 deleted keys, C(http) is what the client really sent (retries included).
  returned: success
  type: dict
  sample: {"list": 2, "delete": 2, "minimum": 4, "http": 4}
delete_errors:
  description: Keys S3 refused to delete, with its error code and message.
  returned: failure
  type: list
  elements: dict
  sample: [{"key": "postgres/db1/app/20260301T030000Z.dump", "code": "AccessDenied", "message": "Access Denied"}]
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.opsforge.stack.plugins.module_utils import gfs, s3_rotation


def _argument_spec():
    return dict(
        bucket=dict(type="str", required=True),
        prefix=dict(type="str", default=""),
        key_pattern=dict(type="str", default=gfs.DEFAULT_KEY_PATTERN, no_log=False),
        time_format=dict(type="str", default=gfs.DEFAULT_TIME_FORMAT),
        complete_suffix=dict(type="str"),
        keep_hourly=dict(type="int", default=0),
        keep_daily=dict(type="int", default=7),
        keep_weekly=dict(type="int", default=4),
        keep_monthly=dict(type="int", default=3),
        keep_yearly=dict(type="int", default=0),
        min_keep=dict(type="int", default=1),
        batch_size=dict(type="int", default=s3_rotation.MAX_DELETE_BATCH),
        return_keys=dict(type="bool", default=True),
        endpoint_url=dict(type="str", aliases=["endpoint"]),
        region=dict(type="str"),
        access_key=dict(type="str", aliases=["aws_access_key_id"], no_log=True),
        secret_key=dict(type="str", aliases=["aws_secret_access_key"], no_log=True),
        session_token=dict(type="str", no_log=True),
        profile=dict(type="str"),
        addressing_style=dict(type="str", default="auto", choices=["auto", "path", "virtual"]),
        validate_certs=dict(type="bool", default=True),
        ca_bundle=dict(type="path"),
    )


def _run(module):
    p = module.params
    policy = gfs.Policy(hourly=p["keep_hourly"], daily=p["keep_daily"], weekly=p["keep_weekly"],
                        monthly=p["keep_monthly"], yearly=p["keep_yearly"], min_keep=p["min_keep"])
    client = s3_rotation.make_client(
        endpoint_url=p["endpoint_url"], region=p["region"], access_key=p["access_key"],
        secret_key=p["secret_key"], session_token=p["session_token"], profile=p["profile"],
        addressing_style=p["addressing_style"], validate_certs=p["validate_certs"], ca_bundle=p["ca_bundle"],
    )
    counter = s3_rotation.attach_counter(client)
    try:
        result = s3_rotation.rotate(client, p["bucket"], p["prefix"], policy, pattern=p["key_pattern"],
                                    time_format=p["time_format"],
                                    check_mode=module.check_mode, batch_size=p["batch_size"],
                                    complete_suffix=p["complete_suffix"])
    finally:
        http_requests = counter.total
    return result, http_requests


def _shape(result, http_requests, return_keys):
    out = dict(result)
    out["requests"] = {
        "list": out.pop("list_requests"),
        "delete": out.pop("delete_requests"),
        "minimum": out.pop("minimum_requests"),
        "http": http_requests,
    }
    out["diff"] = {
        "before": "\n".join(sorted(out["kept"] + out["deleted"])) + "\n",
        "after": "\n".join(sorted(out["kept"])) + "\n",
        "before_header": "keys before rotation",
        "after_header": "keys kept",
    }
    if not return_keys:
        out["kept"] = []
        out["deleted"] = []
        out["diff"] = {"before": "%d keys\n" % (out["kept_count"] + out["deleted_count"]),
                       "after": "%d keys\n" % out["kept_count"]}
    return out


def main():
    module = AnsibleModule(argument_spec=_argument_spec(), supports_check_mode=True)
    if not s3_rotation.HAS_BOTO3:
        module.fail_json(msg=missing_required_lib("boto3"), exception=s3_rotation.BOTO3_IMPORT_ERROR)
    if not 1 <= module.params["batch_size"] <= s3_rotation.MAX_DELETE_BATCH:
        module.fail_json(msg="batch_size must be between 1 and 1000 (the S3 limit), found %d"
                         % module.params["batch_size"])
    try:
        result, http_requests = _run(module)
    except gfs.GfsError as exc:
        module.fail_json(msg=str(exc))
    except s3_rotation.DeleteError as exc:
        out = _shape(exc.result, 0, module.params["return_keys"])
        out.pop("diff", None)
        out.pop("delete_errors", None)
        module.fail_json(msg=str(exc), delete_errors=exc.errors, **out)
    except s3_rotation.S3RotationError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**_shape(result, http_requests, module.params["return_keys"]))


if __name__ == "__main__":
    main()
