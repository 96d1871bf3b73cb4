# Copyright: opsforge.stack developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The S3 side of a rotation: a complete paginated listing, batched deletes, request counting.

The retention decision itself lives in ``gfs.py`` (pure functions). This file talks to S3 through
boto3 and is used by the ``s3_backup_rotate`` module and, copied next to ``gfs.py``, by the on-host
backup job of the ``backup`` role. Errors are typed (``S3RotationError`` and subclasses); nothing
here calls ``fail_json``.
"""

from __future__ import annotations

import traceback

try:
    from ansible_collections.opsforge.stack.plugins.module_utils import gfs
except ImportError:  # copied next to the on-host backup job, outside any collection
    import gfs  # type: ignore[no-redef]

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    HAS_BOTO3 = True
    BOTO3_IMPORT_ERROR = None
except ImportError:
    HAS_BOTO3 = False
    BOTO3_IMPORT_ERROR = traceback.format_exc()

    class BotoCoreError(Exception):  # type: ignore[no-redef]
        """Stand-in so the except clauses below stay valid without botocore."""

    class ClientError(Exception):  # type: ignore[no-redef]
        """Stand-in so the except clauses below stay valid without botocore."""


MAX_DELETE_BATCH = 1000
MAX_PAGES = 1000000


class S3RotationError(Exception):
    """Base class: the rotation could not do what it was asked; nothing more was deleted."""


class ListingError(S3RotationError):
    """The listing failed or came back incomplete: the rotation refuses to decide on a partial view."""


class DeleteError(S3RotationError):
    """Some keys could not be deleted. ``result`` holds what was deleted and ``errors`` the failures."""

    def __init__(self, message, result=None, errors=None):
        super().__init__(message)
        self.result = result or {}
        self.errors = errors or []


class RequestCounter:
    """Counts the HTTP requests a boto3 client really sends (retries included), by operation."""

    def __init__(self):
        self.by_operation = {}

    def __call__(self, request=None, **kwargs):
        # before-send event: event_name is 'before-send.s3.ListObjectsV2'
        operation = kwargs.get("event_name", "").rsplit(".", 1)[-1] or "unknown"
        self.by_operation[operation] = self.by_operation.get(operation, 0) + 1

    @property
    def total(self):
        return sum(self.by_operation.values())

    def as_dict(self):
        return {"total": self.total, "by_operation": dict(self.by_operation)}


def attach_counter(client):
    """Count every request ``client`` sends from now on; returns the RequestCounter."""
    counter = RequestCounter()
    client.meta.events.register("before-send.s3.*", counter)
    return counter


def make_client(endpoint_url=None, *, region=None, access_key=None, secret_key=None, session_token=None,
                addressing_style="auto", validate_certs=True, ca_bundle=None, profile=None):
    """An S3 client. Without keys, boto3's own chain applies (environment, profile, instance role)."""
    if not HAS_BOTO3:
        raise S3RotationError("boto3 is required: %s" % BOTO3_IMPORT_ERROR)
    options = {"s3": {"addressing_style": addressing_style}, "retries": {"max_attempts": 5, "mode": "standard"}}
    try:
        # S3-compatible stores differ on the newer default checksums; send them only when required.
        config = Config(request_checksum_calculation="when_required",
                        response_checksum_validation="when_required", **options)
    except TypeError:  # botocore older than 1.36 has neither setting (and does not need them)
        config = Config(**options)
    try:
        session = boto3.session.Session(profile_name=profile) if profile else boto3.session.Session()
        verify = ca_bundle if ca_bundle else validate_certs
        return session.client(
            "s3", endpoint_url=endpoint_url or None, region_name=region or None,
            aws_access_key_id=access_key or None, aws_secret_access_key=secret_key or None,
            aws_session_token=session_token or None, verify=verify, config=config,
        )
    except (BotoCoreError, ValueError) as exc:
        raise S3RotationError("cannot create the S3 client: %s" % exc) from exc


def _error_text(exc):
    if isinstance(exc, ClientError) and hasattr(exc, "response"):
        err = exc.response.get("Error", {})
        return "%s: %s" % (err.get("Code", "?"), err.get("Message", str(exc)))
    return str(exc)


def list_keys(client, bucket, prefix=""):
    """Every key under ``prefix``, following continuation tokens.

    Returns ``(keys, pages)``. Raises ListingError when a request fails or a page claims more results
    without a continuation token (or repeats one), so no decision is ever made on a partial listing.
    """
    keys = []
    pages = 0
    token = None
    seen_tokens = set()
    while True:
        kwargs = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": 1000}
        if token:
            kwargs["ContinuationToken"] = token
        try:
            page = client.list_objects_v2(**kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise ListingError(
                "listing s3://%s/%s failed after %d page(s): %s; refusing to rotate on a partial listing"
                % (bucket, prefix, pages, _error_text(exc))
            ) from exc
        pages += 1
        contents = page.get("Contents", [])
        if "KeyCount" in page and page["KeyCount"] != len(contents):
            raise ListingError(
                "listing page %d of s3://%s/%s announced %s keys but held %d; refusing to rotate"
                % (pages, bucket, prefix, page["KeyCount"], len(contents))
            )
        keys.extend(obj["Key"] for obj in contents)
        if not page.get("IsTruncated"):
            return keys, pages
        token = page.get("NextContinuationToken")
        if not token or token in seen_tokens or pages >= MAX_PAGES:
            raise ListingError(
                "listing of s3://%s/%s is incomplete: page %d is truncated but gives no new continuation "
                "token; refusing to rotate" % (bucket, prefix, pages)
            )
        seen_tokens.add(token)


def delete_keys(client, bucket, keys, batch_size=MAX_DELETE_BATCH):
    """Delete ``keys`` with DeleteObjects, ``batch_size`` (<= 1000) keys per request.

    Returns ``(deleted, errors, requests)``; ``errors`` is a list of ``{key, code, message}`` for the
    keys S3 refused (the other keys of that batch are deleted). A request that fails as a whole stops
    the deletion: its keys are reported as errors and the remaining batches are not sent.
    """
    if not 1 <= batch_size <= MAX_DELETE_BATCH:
        raise S3RotationError("batch_size must be between 1 and %d, found %r" % (MAX_DELETE_BATCH, batch_size))
    deleted = []
    errors = []
    requests = 0
    for start in range(0, len(keys), batch_size):
        batch = keys[start:start + batch_size]
        requests += 1
        try:
            response = client.delete_objects(
                Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
            )
        except (BotoCoreError, ClientError) as exc:
            text = _error_text(exc)
            errors.extend({"key": k, "code": "RequestFailed", "message": text} for k in batch)
            break
        failed = {}
        for err in response.get("Errors", []):
            failed[err.get("Key")] = err
            errors.append({"key": err.get("Key"), "code": err.get("Code", ""), "message": err.get("Message", "")})
        deleted.extend(k for k in batch if k not in failed)
    return deleted, errors, requests


def normalise_prefix(prefix):
    """A prefix names a folder: ``backups`` and ``backups/`` both list ``backups/...``."""
    prefix = (prefix or "").lstrip("/")
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def rotate(client, bucket, prefix, policy, *, pattern=gfs.DEFAULT_KEY_PATTERN,
           time_format=gfs.DEFAULT_TIME_FORMAT, check_mode=False, batch_size=MAX_DELETE_BATCH, complete_suffix=None):
    """List, plan with the GFS policy, delete (unless ``check_mode``). Returns the result dict.

    The dict is the plan (kept, deleted, unparsed, incomplete, counts, groups) plus ``list_requests``,
    ``delete_requests``, ``minimum_requests`` and ``changed``. In check mode ``deleted`` lists what
    would be deleted and no delete request is sent. Raises ListingError, DeleteError, gfs.GfsError.
    """
    prefix = normalise_prefix(prefix)
    regex = gfs.compile_pattern(pattern)
    keys, pages = list_keys(client, bucket, prefix)
    decision = gfs.plan(keys, policy, regex, time_format, strip_prefix=prefix, complete_suffix=complete_suffix)
    result = decision.as_dict()
    result.update({
        "listed_count": len(keys),
        "list_requests": pages,
        "delete_requests": 0,
        "minimum_requests": pages + -(-len(decision.delete) // MAX_DELETE_BATCH),
        "changed": bool(decision.delete),
    })
    if check_mode or not decision.delete:
        return result
    deleted, errors, requests = delete_keys(client, bucket, decision.delete, batch_size)
    result["delete_requests"] = requests
    result["deleted"] = deleted
    result["deleted_count"] = len(deleted)
    result["changed"] = bool(deleted)
    if errors:
        result["delete_errors"] = errors
        raise DeleteError(
            "%d of %d key(s) could not be deleted from s3://%s (first: %s %s: %s); the others were deleted"
            % (len(errors), len(decision.delete), bucket, errors[0]["key"], errors[0]["code"], errors[0]["message"]),
            result=result, errors=errors,
        )
    return result
