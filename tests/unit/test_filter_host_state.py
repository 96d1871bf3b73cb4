"""The roles' one-probe fast path (plugins/filter/host_state.py): the probe's argv, its lines, and the answers.

The probe script itself runs here too (``sh`` with files and patterns in a temporary directory), so the lines the
filters read are the ones the script prints; the dpkg and systemd answers are given as the script prints them.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / ".collections") not in sys.path:
    sys.path.insert(0, str(ROOT / ".collections"))

from ansible_collections.opsforge.stack.plugins.filter.host_state import (
    FilterModule,
    file_unchanged,
    files_to_install,
    globbed,
    has_line,
    host_probe,
    host_probe_argv,
    package_version,
    packages_missing,
    sysctl_file,
    sysctl_state,
    unit_running,
)

PROBE = [
    "pkg ii  nginx 1.26.3-3+deb13u1",
    "pkg ii  redis-server 5:8.0.2-3",
    "pkg rc  redis-sentinel ",
    "pkg - postgresql-18",
    "pkg iHR postgresql-17 17.6-1",
    "file 755 root root 0123456789abcdef0123456789abcdef01234567 /usr/local/sbin/tool",
    "file 640 root redis 89abcdef0123456789abcdef0123456789abcdef /etc/redis/opsforge-redis.conf",
    "file 755 root root - /etc/nginx/tls",
    "unit 0 0 nginx.service",
    "unit 0 3 redis-server.service",
    "unit 1 0 postgresql@17-main",
    "sysctl 0 vm.overcommit_memory 1",
    "sysctl 1 net.core.somaxconn 4096",
    "sysctl 0 net.ipv4.tcp_rmem 4096 131072 6291456",
    "glob /etc/nginx/sites-enabled/opsforge-app.conf",
    "glob /etc/nginx/sites-enabled/opsforge-old.conf",
    "line 0 /etc/redis/redis.conf",
    "line 1 /etc/redis/sentinel.conf",
    "something unexpected",
]


def sha1(text):
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


def run_probe(argv):
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.splitlines()


def test_registered_filters():
    names = set(FilterModule().filters())
    assert {"host_probe_argv", "host_probe", "packages_missing", "package_version", "files_to_install",
            "file_unchanged", "unit_running", "sysctl_state", "sysctl_file", "globbed", "has_line"} <= names


def test_argv_sections_in_order_and_empty_ones_left_out():
    argv = host_probe_argv(["nginx"], files=["/a"], units=[], globs=["/x/*.conf"], lines={"/r": "# marker"})
    assert argv[:2] == ["sh", "-c"]
    assert argv[4:] == ["--pkg", "nginx", "--file", "/a", "--glob", "/x/*.conf", "--line", "/r\n# marker"]
    # A value that looks like a section flag cannot switch sections.
    assert host_probe_argv(["--file", "nginx"])[4:] == ["--pkg", "nginx"]


def test_the_script_reports_files_directories_globs_and_lines(tmp_path):
    script = tmp_path / "tool"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o750)
    (tmp_path / "sites").mkdir()
    (tmp_path / "sites" / "opsforge-a.conf").write_text("a\n")
    (tmp_path / "sites" / "opsforge-b.conf").write_text("b\n")
    (tmp_path / "sites" / "other.conf").write_text("c\n")
    (tmp_path / "sites" / "opsforge-link.conf").symlink_to(tmp_path / "sites" / "other.conf")
    conf = tmp_path / "redis.conf"
    conf.write_text("# opsforge marker\nport 6379\n")
    lines = run_probe(host_probe_argv(
        files=[str(script), str(tmp_path / "sites"), str(tmp_path / "missing")],
        globs=[f"{tmp_path}/sites/opsforge-*.conf", f"{tmp_path}/none/*.conf"],
        lines={str(conf): "# opsforge marker", str(tmp_path / "missing"): "x"},
    ))
    state = host_probe(lines)
    assert state["files"][str(script)]["mode"] == 0o750
    assert state["files"][str(script)]["checksum"] == sha1("#!/bin/sh\necho hi\n")
    assert state["files"][str(tmp_path / "sites")]["checksum"] == "-"
    assert str(tmp_path / "missing") not in state["files"]
    assert globbed(lines) == [f"{tmp_path}/sites/opsforge-a.conf", f"{tmp_path}/sites/opsforge-b.conf"]
    assert has_line(lines, str(conf)) is True
    assert has_line(lines, str(tmp_path / "missing")) is False


def test_the_script_reports_unknown_packages():
    lines = run_probe(host_probe_argv(["opsforge-no-such-package"]))
    assert lines == ["pkg - opsforge-no-such-package"]


def test_reading_the_lines():
    state = host_probe(PROBE)
    assert state["packages"] == {"nginx": "ii", "redis-server": "ii", "redis-sentinel": "rc",
                                 "postgresql-18": "-", "postgresql-17": "iHR"}
    assert state["versions"] == {"nginx": "1.26.3-3+deb13u1", "redis-server": "5:8.0.2-3"}
    assert state["units"]["redis-server.service"] == {"enabled": True, "active": False}
    assert state["sysctls"]["net.ipv4.tcp_rmem"] == {"writable": True, "value": "4096 131072 6291456"}
    assert host_probe("\n".join(PROBE)) == state
    assert host_probe(state) is state
    assert host_probe(None)["packages"] == {}


def test_packages_missing():
    assert packages_missing(["nginx", "redis-server"], PROBE) == []
    assert packages_missing(["nginx", "redis-sentinel", "postgresql-18", "postgresql-17"], PROBE) == [
        "redis-sentinel", "postgresql-18", "postgresql-17"]
    assert packages_missing(["nginx", "unseen"], PROBE) == ["unseen"]


@pytest.mark.parametrize("pinned", ["nginx=1.26.3-3", "nginx:amd64", "nginx*", "/tmp/x.deb", "Nginx"])
def test_a_name_the_status_cannot_judge_sends_all_to_apt(pinned):
    assert packages_missing(["redis-server", pinned], PROBE) == ["redis-server", pinned]


def test_a_package_on_several_architectures_must_be_installed_on_all():
    lines = ["pkg ii  libfoo 1.0", "pkg iU  libfoo 1.0"]
    assert packages_missing(["libfoo"], lines) == ["libfoo"]
    assert packages_missing(["libfoo"], list(reversed(lines))) == ["libfoo"]


def test_package_version():
    assert package_version(PROBE, ["nginx-light", "nginx"]) == "1.26.3-3+deb13u1"
    assert package_version(PROBE, "nginx") == "1.26.3-3+deb13u1"
    assert package_version(PROBE, ["postgresql-17"]) == ""  # not installed cleanly
    assert package_version([], ["nginx"]) == ""


def test_files_to_install():
    tool = {"dest": "/usr/local/sbin/tool", "checksum": "0123456789ABCDEF0123456789abcdef01234567",
            "mode": "0755", "owner": "root", "group": "root"}
    assert files_to_install([tool], PROBE) == []
    changed = [dict(tool, checksum="f" * 40), dict(tool, mode="0700"), dict(tool, owner="redis"),
               dict(tool, group="staff"), dict(tool, mode="u=rwx"), dict(tool, checksum=None),
               dict(tool, dest="/usr/local/sbin/other")]
    assert files_to_install(changed, PROBE) == changed
    directory = {"dest": "/etc/nginx/tls", "checksum": "-", "mode": "0755", "owner": "root", "group": "root"}
    assert files_to_install([directory], PROBE) == []
    assert files_to_install([dict(directory, mode="0750")], PROBE) == [dict(directory, mode="0750")]
    # mode, owner and group are only compared when given
    assert files_to_install([{"dest": "/usr/local/sbin/tool", "checksum": tool["checksum"]}], PROBE) == []
    assert files_to_install([tool], []) == [tool]


def test_file_unchanged():
    text = "line\n"
    lines = [f"file 644 root root {sha1(text)} /etc/x.conf", f"file 640 postgres postgres {sha1(text)} /etc/p.conf"]
    assert file_unchanged("/etc/x.conf", text, lines, mode="0644")
    assert file_unchanged("/etc/x.conf", text, lines)
    assert not file_unchanged("/etc/x.conf", text + "more\n", lines, mode="0644")
    assert not file_unchanged("/etc/x.conf", text, lines, mode="0640")
    assert file_unchanged("/etc/p.conf", text, lines, mode="0640", owner="postgres", group="postgres")
    assert not file_unchanged("/etc/p.conf", text, lines, mode="0640")
    assert not file_unchanged("/etc/y.conf", text, lines)
    assert not file_unchanged("/etc/x.conf", None, lines)
    assert not file_unchanged("/etc/x.conf", text, [])  # no probe (another entry point): write as before
    utf8 = "caf\u00e9\n"
    assert file_unchanged("/u", utf8, [f"file 644 root root {hashlib.sha1(utf8.encode()).hexdigest()} /u"])


def test_unit_running():
    assert unit_running(PROBE, "nginx.service")
    assert unit_running(PROBE, "nginx")
    assert not unit_running(PROBE, "redis-server")  # enabled, not active
    assert not unit_running(PROBE, "postgresql@17-main")  # active, not enabled
    assert not unit_running(PROBE, "opsforge-disable-thp.service")  # not asked
    assert not unit_running([], "nginx")


def test_sysctl_state():
    wanted = {"vm.overcommit_memory": 1, "net.core.somaxconn": 1024, "net.ipv4.tcp_rmem": "4096  131072\t6291456",
              "vm.swappiness": 10}
    assert sysctl_state(wanted, PROBE) == [
        {"key": "vm.overcommit_memory", "value": 1, "writable": True, "differs": False},
        {"key": "net.core.somaxconn", "value": 1024, "writable": False, "differs": False},  # read-only here
        {"key": "net.ipv4.tcp_rmem", "value": "4096  131072\t6291456", "writable": True, "differs": False},
        {"key": "vm.swappiness", "value": 10, "writable": False, "differs": False},
    ]
    assert sysctl_state({"vm.overcommit_memory": 0}, PROBE)[0]["differs"] is True


def test_sysctl_file_is_what_the_sysctl_module_writes():
    assert sysctl_file({"vm.overcommit_memory": 1, "net.core.somaxconn": 1024}) == (
        "vm.overcommit_memory=1\nnet.core.somaxconn=1024\n")
    assert sysctl_file({}) == ""
