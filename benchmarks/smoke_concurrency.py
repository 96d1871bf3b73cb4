#!/usr/bin/env python3
"""Concurrency of the smoke checks: 20 HTTP checks against an endpoint that takes 1 s each.

Starts a local threaded HTTP server whose endpoint sleeps SECONDS, runs CHECKS http checks through the
module_utils runner (the code path of the smoke_test module), and prints the wall time and the ratio to the
serial time (CHECKS x SECONDS). The goal is about 1 s, not 20: a ratio near 1/CHECKS.

    .venv/bin/python benchmarks/smoke_concurrency.py [--checks 20] [--seconds 1.0] [--max-workers N]

A script that prints numbers, not a test (the unit tests cover correctness).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / ".collections"))

from ansible_collections.opsforge.stack.plugins.module_utils import smoke_probes
from ansible_collections.opsforge.stack.plugins.module_utils.smoke import validate_checks


class SlowHandler(BaseHTTPRequestHandler):
    seconds = 1.0

    def log_message(self, *args):
        pass

    def do_GET(self):
        time.sleep(self.seconds)
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=1.0, help="time the endpoint takes per request")
    parser.add_argument("--max-workers", type=int, default=None)
    args = parser.parse_args()

    SlowHandler.seconds = args.seconds
    server = Server(("127.0.0.1", 0), SlowHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d/slow" % server.server_address[1]
    specs = validate_checks([
        {"name": "slow-%02d" % i, "type": "http", "url": url, "retries": 0, "timeout": args.seconds * 10}
        for i in range(args.checks)
    ])
    start = time.monotonic()
    report = smoke_probes.run(specs, deadline=args.seconds * args.checks * 2, max_workers=args.max_workers)
    elapsed = time.monotonic() - start
    server.shutdown()

    serial = args.checks * args.seconds
    latencies = sorted(r.latency_ms for r in report.results if r.latency_ms is not None)
    print("checks:            %d http checks, endpoint takes %.2f s each" % (args.checks, args.seconds))
    print("passed:            %d/%d" % (report.summary()["passed"], args.checks))
    print("wall time:         %.3f s" % elapsed)
    print("serial would take: %.3f s" % serial)
    print("ratio vs serial:   %.3f (speed-up x%.1f; ideal %.3f)" % (elapsed / serial, serial / elapsed,
                                                                   1.0 / args.checks))
    if latencies:
        print("latency ms:        min %.0f, median %.0f, max %.0f" % (
            latencies[0], latencies[len(latencies) // 2], latencies[-1]))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
