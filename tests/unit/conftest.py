"""Fixtures shared by every unit test: a real S3 stand-in on loopback.

The S3 stand-in is moto's server mode (``python -m moto.server``, the same program the Molecule
scenarios run as a unit), started once per test session on a free loopback port: the tests talk
HTTP to it through boto3 like to any S3-compatible store, nothing is mocked inside the process.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint():
    if os.environ.get("CI") == "true":
        import moto.server  # noqa: F401, PLC0415  in CI a missing moto is a failure, not a skip
    pytest.importorskip("moto.server", reason="moto[server] is in requirements.txt")
    port = _free_port()
    env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"moto server did not start on 127.0.0.1:{port}")
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
