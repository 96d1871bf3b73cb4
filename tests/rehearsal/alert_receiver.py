#!/usr/bin/env python3
"""TEST-ONLY webhook receiver of the rehearsal: the on-call endpoint the example's Alertmanager notifies.

    alert_receiver.py --listen 127.0.0.1:9099 --log /var/lib/rehearsal-alerts/alerts.jsonl

Runs on rehearsal-services behind the TLS front (alerts.example.com on the test network). Every POST body
(Alertmanager's webhook payload) is appended as one JSON line, with the time it arrived; the drills read the file
(`docker exec rehearsal-services cat ...`) to see each alert fire and resolve. Anything but a JSON POST gets 400.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()


def handler(log_path: str) -> type[BaseHTTPRequestHandler]:
    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                payload = json.loads(self.rfile.read(length))
            except ValueError:
                self.send_error(400, "expected a JSON body (Alertmanager's webhook payload)")
                return
            line = json.dumps({"received": time.time(), "path": self.path, "payload": payload})
            with LOCK, open(log_path, "a", encoding="utf-8") as log:
                log.write(line + "\n")
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    return Receiver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", default="127.0.0.1:9099")
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    ThreadingHTTPServer((host, int(port)), handler(args.log)).serve_forever()


if __name__ == "__main__":
    main()
