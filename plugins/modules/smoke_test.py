#!/usr/bin/python
# Copyright: opsforge.stack contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: smoke_test
short_description: Prove that a deployment works with HTTP, TLS, TCP, PostgreSQL and Redis checks
version_added: 0.1.0
description:
  - Runs a list of named checks concurrently (one thread each) under a global O(deadline) and returns one
    result per check with its status (V(passed), V(failed) or V(skipped)), latency, number of attempts and,
    for a failure, what was expected versus what was found.
  - The task fails when any check with O(checks[].required=true) fails; the message names every failing
    check with what was expected and found. Failures of optional checks become warnings.
  - Each check retries with exponential backoff (O(checks[].retries), O(checks[].delay),
    O(checks[].backoff)) so services that are still starting get time, and each attempt has its own
    O(checks[].timeout).
  - The whole list is validated before anything touches the network. An unknown check type, an invalid
    URL, a missing required field or a O(checks[].json_path) that is not a valid jmespath expression
    fails the task naming the check.
  - The module only reads. PostgreSQL queries run in a read-only session; in check mode HTTP checks whose
    method is not V(GET), V(HEAD) or V(OPTIONS) are reported as V(skipped).
  - HTTP, TLS, TCP and Redis use only the Python standard library, so the checks run on any host with
    Python 3.9 or later; PostgreSQL checks need C(psycopg2), O(checks[].json_path) needs C(jmespath).
author:
  - opsforge.stack developers (@opsforge)
options:
  checks:
    description:
      - The checks to run. Every check has a O(checks[].name) and a O(checks[].type); the other fields
        depend on the type, and a field that does not apply to the type is an error.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - A unique name for the check, used in the result and in failure messages. Required.
        type: str
      type:
        description:
          - What to check. Required. One of V(http), V(tls), V(tcp), V(postgres), V(redis).
          - V(http) sends one request to O(checks[].url) and compares status, headers, body and JSON.
          - V(tls) makes a TLS handshake with O(checks[].host) and inspects the certificate and protocol.
          - V(tcp) opens a TCP connection to O(checks[].host) and O(checks[].port).
          - V(postgres) connects with psycopg2, runs O(checks[].query) and reports whether the server is
            the primary or a replica (C(pg_is_in_recovery())).
          - V(redis) authenticates, sends C(PING) and reads C(ROLE).
        type: str
      required:
        description:
          - Whether a failure of this check fails the task. A failed optional check is reported and
            warned about only.
        type: bool
        default: true
      retries:
        description:
          - How many more attempts after a failed first one.
        type: int
        default: 2
      delay:
        description:
          - Seconds to wait before the first retry.
        type: float
        default: 1.0
      backoff:
        description:
          - Multiplier of the pause before each further retry (1, 2, 4, ... seconds with the defaults).
          - A retry that would end after the global O(deadline) is not attempted.
        type: float
        default: 2.0
      timeout:
        description:
          - Seconds one attempt may take (connection and each read), never more than what is left of
            O(deadline).
        type: float
        default: 5.0
      max_latency_ms:
        description:
          - Fail the attempt when it took longer than this many milliseconds, even if the answer was right.
        type: float
      url:
        description:
          - V(http) only, required. The C(http://) or C(https://) URL to request.
        type: str
      method:
        description:
          - V(http) only. The HTTP method. Default V(GET).
        type: str
      status:
        description:
          - V(http) only. The accepted status codes. Default V([200]).
        type: list
        elements: int
      headers:
        description:
          - V(http) only. Request headers to send.
        type: dict
      body:
        description:
          - V(http) only. A request body to send.
        type: str
      body_contains:
        description:
          - V(http) only. Strings that must all appear in the response body (the first MiB).
        type: list
        elements: str
      json_path:
        description:
          - V(http) only. A jmespath expression evaluated on the JSON response body. Without
            O(checks[].json_equals), its value must be non-empty (not null, false, empty string or list).
        type: str
      json_equals:
        description:
          - V(http) only. The value O(checks[].json_path) must return (compared as is, then as text).
        type: raw
      headers_present:
        description:
          - V(http) only. Names of response headers that must be present (case-insensitive).
        type: list
        elements: str
      validate_certs:
        description:
          - V(http), V(tls) and V(redis) with O(checks[].tls). Verify the certificate chain and the name.
            Default V(true).
          - With V(false), a V(tls) check still requires a certificate whose names match
            O(checks[].server_name) and which is valid long enough.
        type: bool
      ca_path:
        description:
          - V(http), V(tls), V(redis). A PEM file of the CA certificates to trust instead of the system's.
        type: str
      follow_redirects:
        description:
          - V(http) only. Follow up to 10 redirects (301, 302, 303, 307, 308). Default V(false), so a redirect
            is an answer like any other, compared with O(checks[].status).
        type: bool
      connect_to:
        description:
          - V(http) only. Connect to this address instead of resolving the URL's host, like C(curl
            --resolve); the C(Host) header, SNI and certificate name stay the URL's host. Useful to check a
            site on its own host with C(127.0.0.1).
        type: str
      host:
        description:
          - V(tls), V(tcp) (required) and V(postgres), V(redis) (default V(localhost)). The host name or
            address to connect to; for V(postgres) also a Unix socket directory.
        type: str
      port:
        description:
          - V(tcp) (required), V(tls) (default V(443)), V(postgres) (default V(5432)), V(redis) (default
            V(6379)).
        type: int
      server_name:
        description:
          - V(tls) only. The name sent as SNI and required in the certificate. Default O(checks[].host).
        type: str
      min_days_valid:
        description:
          - V(tls) only. The certificate must stay valid at least this many more days. Default V(14).
        type: int
      min_protocol:
        description:
          - V(tls) only. The negotiated protocol must be at least this one. One of V(TLSv1), V(TLSv1.1),
            V(TLSv1.2), V(TLSv1.3). Default V(TLSv1.2).
        type: str
      user:
        description:
          - V(postgres) only. The role to log in as. Default V(postgres).
        type: str
      password:
        description:
          - V(postgres) and V(redis). The password (Redis C(requirepass) or ACL user's password).
        type: str
      database:
        description:
          - V(postgres) only. The database to connect to. Default V(postgres).
        type: str
      sslmode:
        description:
          - V(postgres) only. libpq's C(sslmode). Default V(prefer).
        type: str
      query:
        description:
          - V(postgres) only. A query to run in a read-only transaction. Default V(SELECT 1).
        type: str
      expect:
        description:
          - V(postgres) only. The value the first column of the first row must have (compared as is, then as
            text). Not checked when omitted.
        type: raw
      expect_role:
        description:
          - V(postgres) (V(primary) or V(replica)) and V(redis) (V(master) or V(replica)). The role the
            server must have. Not checked when omitted; reported in RV(checks[].details) either way.
        type: str
      username:
        description:
          - V(redis) only. An ACL user name (Redis 6 or later); without it, C(AUTH) sends only the password.
        type: str
      tls:
        description:
          - V(redis) only. Speak TLS to the server. Default V(false).
        type: bool
  deadline:
    description:
      - Seconds the whole run may take. Checks still retrying are stopped at this time and reported failed.
    type: float
    default: 60
  max_workers:
    description:
      - At most this many checks run at once. Default is all of them.
    type: int
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The module only reads; in check mode HTTP checks with a method that may change data are skipped.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - The checks run where the task runs. Use C(delegate_to) to check from another place, or run them on each
    host against its own services (O(checks[].connect_to) for sites).
  - The Redis client is built in (RESP2 over a socket); C(redis-py) is not needed.
  - C(playbooks/smoke.yml) builds the checks of a whole inventory from the roles' variables.
requirements:
  - python >= 3.9
  - psycopg2 (for V(postgres) checks)
  - jmespath (for O(checks[].json_path))
seealso:
  - module: ansible.builtin.uri
  - module: ansible.builtin.wait_for
  - module: community.postgresql.postgresql_ping
  - module: community.crypto.get_certificate
"""

EXAMPLES = r"""
- name: Prove that the deployment works
  opsforge.stack.smoke_test:
    deadline: 60
    checks:
      - name: site answers over HTTPS
        type: http
        url: https://www.example.com/healthz
        status: [200]
        body_contains: [ok]
        headers_present: [Strict-Transport-Security]
        max_latency_ms: 500
      - name: API reports a healthy database
        type: http
        url: https://www.example.com/api/health
        json_path: checks.database
        json_equals: up
      - name: certificate valid for a month more
        type: tls
        host: www.example.com
        min_days_valid: 30
        min_protocol: TLSv1.2
      - name: database is the primary and has migrations
        type: postgres
        host: db1.example.com
        user: app
        password: "{{ vault_app_db_password }}"
        database: app
        query: SELECT count(*) > 0 FROM django_migrations
        expect: true
        expect_role: primary
      - name: cache answers
        type: redis
        host: cache1.example.com
        password: "{{ vault_redis_password }}"
        expect_role: master
      - name: metrics port open (optional)
        type: tcp
        host: web1.example.com
        port: 9100
        required: false
  register: smoke

- name: A site checked on its own host, with a self-signed certificate trusted through its CA
  opsforge.stack.smoke_test:
    checks:
      - name: www.example.test
        type: http
        url: https://www.example.test/
        connect_to: 127.0.0.1
        ca_path: /etc/ssl/certs/example-test-ca.pem
        follow_redirects: true
        retries: 5

- name: Hand the results to the next node of an AWX workflow
  ansible.builtin.set_stats:
    data:
      smoke_results: "{{ smoke.checks }}"
"""

RETURN = r"""
checks:
  description: One result per check, in the order given.
  returned: when the checks were valid and ran
  type: list
  elements: dict
  contains:
    name:
      description: The check's name.
      type: str
      sample: site answers over HTTPS
    type:
      description: The check's type.
      type: str
      sample: http
    required:
      description: Whether a failure of this check fails the task.
      type: bool
      sample: true
    status:
      description: V(passed), V(failed) or V(skipped) (check mode, a method that may change data).
      type: str
      sample: passed
    latency_ms:
      description: Milliseconds taken by the last attempt; null when skipped.
      type: float
      sample: 12.4
    attempts:
      description: How many attempts were made.
      type: int
      sample: 1
    reason:
      description: Why the check failed or was skipped (expected versus found); empty when it passed.
      type: str
      sample: "expected status 200, found status 502"
    expected:
      description: What a failed check expected.
      type: str
      sample: status 200
    found:
      description: What a failed check found instead.
      type: str
      sample: status 502
    details:
      description:
        - What the probe saw. V(http) - C(url), C(status), C(redirects), C(body_bytes), C(json_value).
          V(tls) - C(protocol), C(not_after), C(days_left), C(names), C(server_name). V(tcp) - C(address).
          V(postgres) - C(role) (V(primary) or V(replica)), C(server_version), C(database), C(value).
          V(redis) - C(role) (V(master) or V(replica)), C(server_version).
      type: dict
      sample: {"role": "primary", "server_version": "17.6", "database": "app", "value": 1}
summary:
  description: How many checks passed, failed and were skipped.
  returned: when the checks were valid and ran
  type: dict
  sample: {"passed": 5, "failed": 1, "skipped": 0, "total": 6}
failed_checks:
  description: Names of the required checks that failed.
  returned: when the checks were valid and ran
  type: list
  elements: str
  sample: ["site answers over HTTPS"]
elapsed_ms:
  description: Wall time of the whole run in milliseconds.
  returned: when the checks were valid and ran
  type: float
  sample: 1043.2
errors:
  description: The problems found in O(checks) when validation failed (nothing ran).
  returned: on a validation failure
  type: list
  elements: str
  sample: ["check 'api': invalid URL: url 'htp://x' must start with http:// or https://"]
"""

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.opsforge.stack.plugins.module_utils.smoke import (
    COMMON_FIELDS,
    MissingLibraryError,
    SmokeValidationError,
    all_fields,
    validate_checks,
)
from ansible_collections.opsforge.stack.plugins.module_utils.smoke_probes import run

_ANSIBLE_TYPES = {
    "str": {"type": "str"},
    "int": {"type": "int"},
    "float": {"type": "float"},
    "bool": {"type": "bool"},
    "dict": {"type": "dict"},
    "raw": {"type": "raw"},
    "list_str": {"type": "list", "elements": "str"},
    "list_int": {"type": "list", "elements": "int"},
}


def _check_options():
    """The suboptions of ``checks``, built from the module_utils schema (the one source of truth).

    Only settings common to every type carry a default here; type-specific defaults are applied by
    ``validate_checks`` so that a field left out is not mistaken for one that does not apply.
    """
    options = {}
    for name, kind in all_fields().items():
        option = dict(_ANSIBLE_TYPES[kind])
        default = COMMON_FIELDS[name][1] if name in COMMON_FIELDS else None
        if name in COMMON_FIELDS and default is not None and name not in ("name", "type"):
            option["default"] = default
        if name == "password":
            option["no_log"] = True
        options[name] = option
    return options


def _argument_spec():
    return {
        "checks": {"type": "list", "elements": "dict", "required": True, "options": _check_options()},
        "deadline": {"type": "float", "default": 60},
        "max_workers": {"type": "int"},
    }


def _format_exception(error):
    if error is None:
        return None
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))


def main():
    module = AnsibleModule(argument_spec=_argument_spec(), supports_check_mode=True)
    params = module.params
    if params["deadline"] <= 0:
        module.fail_json(msg="deadline must be more than 0 seconds, got %s" % params["deadline"])
    try:
        specs = validate_checks(params["checks"])
        report = run(specs, deadline=params["deadline"], check_mode=module.check_mode,
                     max_workers=params["max_workers"])
    except SmokeValidationError as exc:
        module.fail_json(msg="Invalid smoke checks, nothing was run: %s" % "; ".join(exc.errors), errors=exc.errors)
    except MissingLibraryError as exc:
        module.fail_json(msg=missing_required_lib(exc.library, reason="for the checks %s" % ", ".join(exc.checks)),
                         exception=_format_exception(exc.error))

    result = {
        "changed": False,
        "checks": [r.as_dict() for r in report.results],
        "summary": report.summary(),
        "failed_checks": [r.name for r in report.failed_required],
        "elapsed_ms": report.elapsed_ms,
        "msg": report.message(),
    }
    for optional in report.failed_optional:
        module.warn("optional smoke check %r failed: %s" % (optional.name, optional.reason))
    if not report.ok:
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
