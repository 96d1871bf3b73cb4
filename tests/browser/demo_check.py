#!/usr/bin/env python3
"""Browser check of the demo (make demo-check): headless Chromium opens the demo's site and Prometheus's alerts.

- The site over HTTPS with the demo's CA trusted for real: a fresh NSS database (certutil) holding only that CA
  as a trust anchor, in a fresh HOME and --user-data-dir; no certificate error is ignored. A first visit without
  the CA must show Chromium's certificate error page, so the trust is known to come from that database.
- Site traffic goes only to the demo: the site's name is mapped to the web host's address, every other name
  fails to resolve (--host-resolver-rules); Prometheus is opened by the monitoring host's address.
- Each page is read with --dump-dom and saved as a screenshot under .cache/artifacts/demo-check/.
- Fails when a page shows an error (Chromium's error page, an HTTP error page, Prometheus's error box), when the
  site's page lacks the release the demo deployed, or when Prometheus's alerts page does not list the stack's
  rules. Firing and pending alerts are the stack's state, not page errors: they are printed.
Reads what `make demo` wrote to .cache/demo/env (site name, addresses, CA file, release).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENV_FILE = ROOT / ".cache" / "demo" / "env"
ARTIFACTS = ROOT / ".cache" / "artifacts" / "demo-check"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1280,900",
]
# Chromium's own error page (net errors, certificate errors) and HTTP error pages (nginx, gunicorn, Django).
ERROR_MARKERS = [
    re.compile(r'id="main-frame-error"|class="neterror"|ERR_[A-Z_]{4,}'),
    re.compile(r"<title>\s*[45]\d\d\b|Bad Gateway|Service Unavailable|Internal Server Error|Gateway Time-out"),
]


def fail(message: str) -> None:
    print(f"demo-check: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def say(message: str) -> None:
    print(f"demo-check: {message}", flush=True)


def demo_settings() -> dict[str, str]:
    if not ENV_FILE.exists():
        fail(f"{ENV_FILE.relative_to(ROOT)} is missing: run `make demo` first")
    settings = dict(line.split("=", 1) for line in ENV_FILE.read_text().splitlines() if "=" in line)
    missing = {"DEMO_SITE", "DEMO_WEB_IP", "DEMO_MON_IP", "DEMO_CA", "DEMO_RELEASE"} - set(settings)
    if missing:
        fail(f"{ENV_FILE} lacks {sorted(missing)}: run `make demo` again")
    return settings


def ensure_tools() -> str:
    """Debian's chromium and certutil (libnss3-tools); installed as root when missing."""
    if not (shutil.which("chromium") and shutil.which("certutil")):
        if os.geteuid() != 0:
            fail("chromium and certutil are needed: as root run apt-get install chromium libnss3-tools")
        say("installing chromium and libnss3-tools (apt)")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for argv in (["apt-get", "-o", "DPkg::Lock::Timeout=300", "update", "-qq"],
                     ["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "-qq", "--no-install-recommends",
                      "chromium", "libnss3-tools", "fonts-dejavu-core"]):
            result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                fail(f"{' '.join(argv)} failed: {result.stderr[-2000:]}")
    return shutil.which("chromium") or fail("chromium is not on PATH")


class Browser:
    """One fresh profile (HOME with its NSS database, user data directory) for the checks that share a trust."""

    def __init__(self, chromium: str, work: Path, resolver_rules: str, ca_file: str | None):
        self.chromium = chromium
        self.home = work / "home"
        self.profile = work / "profile"
        self.resolver_rules = resolver_rules
        nssdb = self.home / ".pki" / "nssdb"
        nssdb.mkdir(parents=True)
        self.profile.mkdir()
        self._certutil("-N", "-d", f"sql:{nssdb}", "--empty-password")
        if ca_file:
            # C,, : a trust anchor for TLS servers only.
            self._certutil("-A", "-d", f"sql:{nssdb}", "-n", "opsforge-demo-ca", "-t", "C,,", "-i", ca_file)

    @staticmethod
    def _certutil(*args: str) -> None:
        result = subprocess.run(["certutil", *args], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            fail(f"certutil {' '.join(args)}: {result.stderr.strip()}")

    def _run(self, url: str, *extra: str) -> subprocess.CompletedProcess:
        argv = [self.chromium, *FLAGS, f"--user-data-dir={self.profile}",
                f"--host-resolver-rules={self.resolver_rules}", "--virtual-time-budget=15000", *extra, url]
        env = dict(os.environ, HOME=str(self.home))
        try:
            return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=90, check=False)
        except subprocess.TimeoutExpired:
            fail(f"chromium did not finish within 90 s on {url}")

    def load(self, url: str) -> tuple[str, str]:
        """The page's DOM after its scripts ran, and Chromium's load error (e.g. net::ERR_CERT_AUTHORITY_INVALID)."""
        result = self._run(url, "--dump-dom")
        failed = re.search(r"Page load failed: (\S+)", result.stderr)
        if failed:
            return result.stdout, failed.group(1)
        if result.returncode != 0 or not result.stdout.strip():
            fail(f"chromium --dump-dom {url} exit {result.returncode}: {result.stderr[-1500:]}")
        return result.stdout, ""

    def screenshot(self, url: str, path: Path, required: bool = True) -> bool:
        """A PNG of the page; headless Chromium writes none for a page that failed to load."""
        result = self._run(url, f"--screenshot={path}")
        written = path.exists() and path.stat().st_size > 0
        if required and not written:
            fail(f"chromium --screenshot {url} wrote no image (exit {result.returncode}): {result.stderr[-1500:]}")
        return written


def page_errors(dom: str) -> list[str]:
    return [match.group(0) for marker in ERROR_MARKERS for match in [marker.search(dom)] if match]


def text_of(dom: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


def visit(browser: Browser, name: str, url: str) -> tuple[str, str]:
    dom, load_error = browser.load(url)
    (ARTIFACTS / f"{name}.html").write_text(dom)
    shot = ARTIFACTS / f"{name}.png"
    written = browser.screenshot(url, shot, required=not load_error)
    say(f"{url}: {load_error or 'loaded'}, DOM -> {(ARTIFACTS / (name + '.html')).relative_to(ROOT)}, "
        f"screenshot -> {shot.relative_to(ROOT) if written else 'none (the page did not load)'}")
    return dom, load_error


def main() -> int:
    settings = demo_settings()
    chromium = ensure_tools()
    site, web_ip, mon_ip = settings["DEMO_SITE"], settings["DEMO_WEB_IP"], settings["DEMO_MON_IP"]
    release, ca_file = settings["DEMO_RELEASE"], settings["DEMO_CA"]
    if not Path(ca_file).is_file():
        fail(f"the demo CA file {ca_file} is missing: run `make demo` again")
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    # The site's name goes to the web host, the monitoring host's address is used as is, nothing else resolves.
    rules = f"MAP {site} {web_ip}, EXCLUDE {mon_ip}, MAP * ~NOTFOUND"
    site_url = f"https://{site}/"
    problems = []

    with tempfile.TemporaryDirectory(prefix="opsforge-demo-check-") as tmp:
        # 1. Without the demo CA the site must be refused: the trust below comes from the NSS database alone.
        untrusted = Browser(chromium, Path(tmp) / "untrusted", rules, None)
        _, load_error = visit(untrusted, "site-without-demo-ca", site_url)
        if load_error != "net::ERR_CERT_AUTHORITY_INVALID":
            problems.append(f"{site_url} without the demo CA: expected net::ERR_CERT_AUTHORITY_INVALID, "
                            f"found {load_error or 'a page'}")
        else:
            say(f"{site_url} without the demo CA: refused ({load_error}), as it must be")

        # 2. With the demo CA: the site shows the release; Prometheus's alerts page renders without errors.
        browser = Browser(chromium, Path(tmp) / "trusted", rules, ca_file)
        dom, load_error = visit(browser, "site", site_url)
        errors = ([load_error] if load_error else []) + page_errors(dom)
        if errors:
            problems.append(f"{site_url} shows an error: {errors}; page text: {text_of(dom)[:300]!r}")
        elif not re.search(rf"(?<![\w.]){re.escape(release)}(?![\w.])", text_of(dom)):
            problems.append(f"{site_url} does not show release {release}: {text_of(dom)[:300]!r}")
        else:
            say(f"{site_url}: release {release} shown, trusted through the demo CA")

        # Debian's Prometheus ships the classic web UI only (its /alerts is a note about the missing React UI).
        alerts_url = f"http://{mon_ip}:9090/classic/alerts"
        dom, load_error = visit(browser, "prometheus-alerts", alerts_url)
        text = text_of(dom)
        errors = ([load_error] if load_error else []) + page_errors(dom)
        errors += re.findall(r"Error (?:fetching|loading|executing)[^.<]*|Error: [^<]{0,120}", text)
        counts = dict(re.findall(r"\b(Inactive|Pending|Firing) \((\d+)\)", text))
        if errors:
            problems.append(f"{alerts_url} shows an error: {errors}")
        elif set(counts) != {"Inactive", "Pending", "Firing"} or "InstanceDown" not in text:
            problems.append(f"{alerts_url} did not render the stack's alert rules: {text[:300]!r}")
        else:
            say(f"{alerts_url}: the stack's rules shown; {counts['Firing']} firing, {counts['Pending']} pending, "
                f"{counts['Inactive']} inactive")
            firing = sorted(set(re.findall(r"\b([A-Z][A-Za-z0-9]+) \([1-9]\d* active\)", text)))
            if firing:
                # Alerts are the stack's state, not a page error: shown, for a look at the screenshot.
                say(f"{alerts_url}: rules with active (pending or firing) alerts: {firing}")

    if problems:
        for problem in problems:
            print(f"demo-check: FAILED: {problem}", file=sys.stderr)
        print(f"demo-check: artifacts in {ARTIFACTS.relative_to(ROOT)}", file=sys.stderr)
        return 1
    say(f"passed; artifacts in {ARTIFACTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
