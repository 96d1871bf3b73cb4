#!/usr/bin/python3
"""Try TCP connections from this host: portscan.py ADDRESS:PORT... -> JSON {"ADDRESS:PORT": true|false}.

true = the connection was accepted within one second; false = refused, dropped or timed out. Bounded: one
attempt per target, at most 16 at a time, only to the targets given (the rehearsal's own test hosts).
"""

import json
import socket
import sys
from concurrent.futures import ThreadPoolExecutor


def accepts(target):
    address, _, port = target.rpartition(":")
    try:
        with socket.create_connection((address, int(port)), timeout=1.0):
            return True
    except OSError:
        return False


def main(targets):
    with ThreadPoolExecutor(max_workers=16) as pool:
        print(json.dumps(dict(zip(targets, pool.map(accepts, targets), strict=True)), sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1:])
