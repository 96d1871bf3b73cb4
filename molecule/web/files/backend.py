#!/usr/bin/env python3
"""Test backend of molecule/web: serves a directory like `python3 -m http.server`, and answers any path ending
in /echo-headers with the request's headers as JSON (a list of [name, value], so a repeated header shows twice).

usage: backend.py DIRECTORY PORT    (listens on 127.0.0.1)
"""

import functools
import json
import sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer


class Handler(SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        if not self.path.split("?", 1)[0].endswith("/echo-headers"):
            super().do_GET()
            return
        body = json.dumps({"headers": list(self.headers.items())}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    directory, port = sys.argv[1], int(sys.argv[2])
    ThreadingHTTPServer(("127.0.0.1", port), functools.partial(Handler, directory=directory)).serve_forever()


if __name__ == "__main__":
    main()
