"""`make demo` and `make test` start with `scripts/testhosts engine`: without a usable Docker engine it must stop
with what to do, not with Docker's own error further on. As root (CI) the check runs as nobody against the
machine's engine; as another user, against a socket this user may not write."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_engine_refuses_a_user_who_cannot_use_docker_and_says_what_to_do():
    directory = Path(tempfile.mkdtemp(prefix="opsforge-sock-"))
    directory.chmod(0o755)  # nobody must reach the socket to find it not writable
    try:
        _check_refusal(directory / "docker.sock")
    finally:
        shutil.rmtree(directory)


def _check_refusal(sock):
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"}
    argv = [str(ROOT / "scripts" / "testhosts"), "engine"]
    if os.geteuid() == 0:
        argv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", *argv]
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock))
    sock.chmod(0o600 if os.geteuid() == 0 else 0o000)  # root's socket, or one its owner may not write
    env["DOCKER_HOST"] = f"unix://{sock}"
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, cwd="/", check=False)
    finally:
        server.close()
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert f"this user may not use the Docker engine's socket {sock} (not writable): run as root" in proc.stderr, (
        proc.stderr
    )
