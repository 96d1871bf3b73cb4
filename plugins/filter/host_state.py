# Copyright: opsforge.stack developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""What one cheap probe of a host says, so that a re-run skips the module calls with nothing to do.

A role runs one ``command`` whose argv ``host_probe_argv`` makes (``PROBE_SCRIPT`` below, run by ``sh``); it
prints one line per thing asked about:

- ``pkg STATUS NAME [VERSION]``: dpkg's status abbreviation (``ii``: installed; ``-``: dpkg does not know the
  name) and the installed version;
- ``file MODE OWNER GROUP SHA1 PATH``: an existing regular file, its octal mode, owner, group and SHA-1 (``-``
  for a directory);
- ``unit ENABLED ACTIVE NAME``: the exit codes of ``systemctl is-enabled`` and ``systemctl is-active`` (0: yes);
- ``sysctl WRITABLE NAME VALUE``: whether /proc/sys/NAME is writable here (0: yes) and its value;
- ``glob PATH``: a regular file (not a link) a shell pattern matched (``/etc/nginx/sites-enabled/x-*.conf``);
- ``line FOUND PATH``: whether PATH has a line equal to the one asked for (argument ``PATH\nLINE``; 0: yes).

``host_probe`` reads those lines; ``packages_missing``, ``package_version``, ``files_to_install``,
``unit_running``, ``sysctl_state`` and ``globbed`` answer the questions the tasks ask. Every answer errs towards
running the module: a version pin, an unknown line, a file or unit not seen all count as "to do". No Ansible
import: unit-testable alone.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

PROBE_SCRIPT = r"""kind= nl='
'
for a do
  case $a in
    --pkg|--file|--unit|--sysctl|--glob|--line) kind=${a#--}; continue ;;
  esac
  case $kind in
    pkg) dpkg-query -W -f='pkg ${db:Status-Abbrev} ${Package} ${Version}\n' "$a" 2>/dev/null || echo "pkg - $a" ;;
    file) if [ -d "$a" ]; then echo "file $(stat -L -c '%a %U %G' -- "$a") - $a"
          elif [ -f "$a" ] && [ -r "$a" ]; then
            echo "file $(stat -L -c '%a %U %G' -- "$a") $(sha1sum <"$a" | cut -c1-40) $a"
          fi ;;
    unit) systemctl is-enabled --quiet -- "$a" 2>/dev/null; e=$?
          systemctl is-active --quiet -- "$a" 2>/dev/null; echo "unit $e $? $a" ;;
    sysctl) p=/proc/sys/$(echo "$a" | tr . /)
            if [ -w "$p" ]; then w=0; else w=1; fi
            echo "sysctl $w $a $(cat -- "$p" 2>/dev/null | tr -s ' \t' '  ')" ;;
    line) f=${a%%"$nl"*}
          if grep -qxF -e "${a#*"$nl"}" -- "$f" 2>/dev/null; then echo "line 0 $f"; else echo "line 1 $f"; fi ;;
    glob) for f in $a; do if [ -f "$f" ] && [ ! -L "$f" ]; then echo "glob $f"; fi; done ;;
  esac
done
exit 0
"""

# A plain Debian package name (no version pin, architecture, wildcard, path or URL).
_PACKAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9.+-]+$")


_FLAGS = ("--pkg", "--file", "--unit", "--sysctl", "--glob", "--line")


def host_probe_argv(packages=None, *, files=None, units=None, sysctls=None, globs=None, lines=None):
    """The probe's argv for ``ansible.builtin.command``: ``packages``, ``files``, ``units``, ``sysctls``, ``globs``
    and ``lines`` (a dict PATH: LINE, each asking whether that file has that exact line).

    In a template: ``{{ packages | opsforge.stack.host_probe_argv(files=[...], units=[...], sysctls=[...]) }}``.
    """
    argv = ["sh", "-c", PROBE_SCRIPT, "opsforge-probe"]
    line_args = [f"{path}\n{line}" for path, line in (lines or {}).items()]
    for flag, given in zip(_FLAGS, (packages, files, units, sysctls, globs, line_args), strict=True):
        items = [str(i) for i in given or [] if str(i) not in _FLAGS]
        if items:
            argv += [flag, *items]
    return argv


def host_probe(lines):
    """The probe's lines as {'packages': {name: status}, 'files': {path: {...}}, 'units': {name: {...}}}."""
    if isinstance(lines, Mapping):
        return lines  # already read
    if isinstance(lines, str):
        lines = lines.splitlines()
    state = {"packages": {}, "versions": {}, "files": {}, "units": {}, "sysctls": {}, "globbed": [], "lines": {}}
    for line in lines or []:
        kind, _sep, rest = str(line).partition(" ")
        if kind == "pkg":
            parts = rest.split()
            if len(parts) in (2, 3):
                status, name = parts[:2]
                # A package installed for several architectures prints one line each: all must be installed.
                if state["packages"].get(name, "ii") == "ii" or status != "ii":
                    state["packages"][name] = status
                if len(parts) == 3 and status == "ii":
                    state["versions"][name] = parts[2]
        elif kind == "file":
            parts = rest.split(" ", 4)
            if len(parts) == 5 and re.fullmatch(r"[0-7]{1,4}", parts[0]):
                mode, owner, group, sha1, path = parts
                state["files"][path] = {"mode": int(mode, 8), "owner": owner, "group": group, "checksum": sha1}
        elif kind == "unit":
            parts = rest.split(" ", 2)
            if len(parts) == 3:
                state["units"][parts[2]] = {"enabled": parts[0] == "0", "active": parts[1] == "0"}
        elif kind == "line":
            found, _sep, path = rest.partition(" ")
            if path:
                state["lines"][path] = found == "0"
        elif kind == "glob":
            if rest and rest not in state["globbed"]:
                state["globbed"].append(rest)
        elif kind == "sysctl":
            parts = rest.split(" ", 2)
            if len(parts) >= 2:
                state["sysctls"][parts[1]] = {"writable": parts[0] == "0",
                                              "value": " ".join(parts[2].split()) if len(parts) == 3 else ""}
    return state


def packages_missing(names, lines):
    """The names (in the given order) that are not installed, or every name when one is not a plain name.

    "Installed" is dpkg's ``ii``: wanted and installed, no error flag. A pinned version (``nginx=1.26*``) or an
    architecture cannot be judged from the status alone, so then apt decides for all of them.
    """
    names = [str(n) for n in names or []]
    if any(not _PACKAGE_NAME.match(n) for n in names):
        return names
    packages = host_probe(lines)["packages"]
    return [n for n in names if packages.get(n) != "ii"]


def package_version(lines, names):
    """The installed version of the first of ``names`` dpkg shows installed (``1.26.3-3``), else ''."""
    versions = host_probe(lines)["versions"]
    for name in [names] if isinstance(names, str) else names or []:
        if str(name) in versions:
            return versions[str(name)]
    return ""


def has_line(lines, path):
    """Whether the probe found its line in ``path`` (False when it did not, or was not asked)."""
    return bool(host_probe(lines)["lines"].get(str(path), False))


def globbed(lines):
    """The files the probe's patterns matched, in the probe's order."""
    return list(host_probe(lines)["globbed"])


def _mode(value):
    if value is None:
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    return int(text, 8) if re.fullmatch(r"[0-7]{1,4}", text) else None


def files_to_install(files, lines):
    """The entries of ``files`` whose file on the host differs from the wanted one (content, mode, owner, group).

    Each entry names ``dest`` and ``checksum`` (the SHA-1 of the wanted content, ``-`` for a directory) and may
    name ``mode``, ``owner`` and ``group``; an entry without a checksum, or with a symbolic mode, is always returned.
    """
    seen = host_probe(lines)["files"]
    out = []
    for entry in files or []:
        have = seen.get(entry.get("dest"))
        wanted_mode = _mode(entry.get("mode"))
        same = (
            have is not None
            and entry.get("checksum") is not None
            and have["checksum"] == str(entry["checksum"]).lower()
            and ("mode" not in entry or (wanted_mode is not None and have["mode"] == wanted_mode))
            and have["owner"] == entry.get("owner", have["owner"])
            and have["group"] == entry.get("group", have["group"])
        )
        if not same:
            out.append(entry)
    return out


def file_unchanged(dest, content, lines, *, mode=None, owner="root", group="root"):
    """Whether the probe saw ``dest`` with exactly ``content`` (text, written as UTF-8) and that mode and owner.

    For a template task: ``when: not dest | file_unchanged(lookup('template', src), probe_lines, mode='0644')``.
    """
    if content is None:
        return False
    data = content if isinstance(content, bytes) else str(content).encode("utf-8")
    entry = {"dest": str(dest), "checksum": hashlib.sha1(data, usedforsecurity=False).hexdigest(),
             "owner": owner, "group": group}
    if mode is not None:
        entry["mode"] = mode
    return not files_to_install([entry], lines)


def unit_running(lines, name):
    """Whether the systemd unit ``name`` was seen enabled and active (``foo`` and ``foo.service`` are one unit)."""
    units = host_probe(lines)["units"]
    unit = units.get(name) or units.get(name + ".service") or units.get(str(name).removesuffix(".service"))
    return bool(unit and unit["enabled"] and unit["active"])


def sysctl_state(wanted, lines):
    """One entry per wanted kernel setting: {key, value, writable, differs}, in the order of ``wanted``.

    ``differs``: writable here and the running value is another (whitespace ignored); a setting the probe did not
    see counts as not writable and not differing (the sysctl module then only writes the file, as before).
    """
    seen = host_probe(lines)["sysctls"]
    out = []
    for key, value in (wanted or {}).items():
        have = seen.get(str(key), {"writable": False, "value": None})
        differs = have["writable"] and have["value"] != " ".join(str(value).split())
        out.append({"key": str(key), "value": value, "writable": have["writable"], "differs": differs})
    return out


def sysctl_file(wanted):
    """The text ansible.posix.sysctl leaves in a drop-in that holds only these settings (one NAME=VALUE a line)."""
    return "".join(f"{key}={value}\n" for key, value in (wanted or {}).items())


class FilterModule:
    def filters(self):
        return {
            "host_probe_argv": host_probe_argv,
            "host_probe": host_probe,
            "packages_missing": packages_missing,
            "package_version": package_version,
            "globbed": globbed,
            "has_line": has_line,
            "files_to_install": files_to_install,
            "file_unchanged": file_unchanged,
            "unit_running": unit_running,
            "sysctl_state": sysctl_state,
            "sysctl_file": sysctl_file,
        }
