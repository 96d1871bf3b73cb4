"""Pure logic of roles/pgbackrest/files/opsforge-pgbackrest: which WAL segments a restore drill needs.

The drill refuses a repository with a hole in the WAL between the backup and the newest archived segment
(PostgreSQL would stop at the hole and promote silently with less data). Recovery reads each segment from the
newest timeline of the history that has begun by then, so the check follows the timeline history.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path

import pytest

HELPER = Path(__file__).resolve().parents[2] / "roles" / "pgbackrest" / "files" / "opsforge-pgbackrest"
_loader = importlib.machinery.SourceFileLoader("opsforge_pgbackrest", str(HELPER))
_spec = importlib.util.spec_from_loader("opsforge_pgbackrest", _loader)
helper = importlib.util.module_from_spec(_spec)
_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no __pycache__ inside the role
_loader.exec_module(helper)
sys.dont_write_bytecode = _bytecode

SEG = 16 * 2**20
# timeline 1 until 0/5000000 (segment 5), timeline 2 until 0/9800000 (segment 9), then timeline 3
HISTORY = "1\t0/5000000\tno recovery target specified\n\n2\t0/9800000\tbefore 2026-11-25 03:00:00+00\n"
FULL = {(1, n) for n in range(2, 7)} | {(2, n) for n in range(5, 11)} | {(3, n) for n in range(9, 14)}


def test_segment_number():
    assert helper.segment_number("000000010000000000000005", SEG) == 5
    assert helper.segment_number("0000000200000001000000FF", SEG) == 0x1FF
    assert helper.segment_number("000000010000000100000001", 64 * 2**20) == 64 + 1


def test_timeline_begins_follows_history():
    assert helper.timeline_begins(HISTORY, 3, SEG) == {1: 0, 2: 5, 3: 9}
    assert helper.timeline_begins("", 1, SEG) == {1: 0}


@pytest.mark.parametrize(
    ("removed", "missing"),
    [
        (set(), []),
        ({(3, 11)}, ["00000003000000000000000B"]),
        ({(2, 7), (3, 11)}, ["000000020000000000000007", "00000003000000000000000B"]),
        ({(1, 7)}, []),  # an abandoned segment of timeline 1 after the switch is not needed
        ({(1, 6)}, []),  # segment 6 is read from timeline 2
        ({(1, 4)}, ["000000010000000000000004"]),
    ],
)
def test_missing_segments(removed, missing):
    begins = helper.timeline_begins(HISTORY, 3, SEG)
    archived = FULL - removed
    assert (
        helper.missing_segments(archived, "000000010000000000000002", "00000003000000000000000D", begins, SEG)
        == missing
    )
