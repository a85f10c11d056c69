"""One wording and one shape for the checks of numeric settings.

``utils.number_problem`` words every "must be a number in range" message
(the system checks and the server's start-up alike); ``checks._number_setting``
turns it into the check's error.
"""

from __future__ import annotations

from typing import Any

import pytest

from django_ftpserver import checks, utils
from django_ftpserver.connections.limits import LIMIT_RANGES, limit_problem


@pytest.mark.parametrize(
    ("value", "bounds", "expected"),
    [
        (0, {"minimum": 0}, None),
        (0.5, {"minimum": 0, "unit": "seconds"}, None),
        (-1, {"minimum": 0, "unit": "seconds"}, "must be 0 or more seconds, not -1"),
        ("300", {"minimum": 0, "unit": "seconds"}, "must be 0 or more seconds, not '300'"),
        (True, {"minimum": 0}, "must be 0 or more, not True"),
        (0, {"minimum": 0, "above": True, "unit": "seconds"}, "must be more than 0 seconds, not 0"),
        (100, {"minimum": 1, "maximum": 100, "whole": True}, None),
        (
            101,
            {"minimum": 1, "maximum": 100, "whole": True},
            "must be a whole number, from 1 to 100, not 101",
        ),
        (2.0, {"minimum": 1, "whole": True}, "must be a whole number, 1 or more, not 2.0"),
        (float("nan"), {"minimum": 0}, "must be 0 or more, not nan"),
    ],
)
def test_number_problem(value: Any, bounds: dict[str, Any], expected: str | None) -> None:
    assert utils.number_problem(value, **bounds) == expected


@pytest.mark.parametrize("name", sorted(LIMIT_RANGES))
@pytest.mark.parametrize("value", [-1, 0, 1, 100, 101, 2.5, "3", True, None])
def test_limit_problem_and_e013_agree(settings, name: str, value: Any) -> None:
    """The server's start-up (limit_problem) and the check (E013) say the same."""
    setattr(settings, f"FTPSERVER_{name.upper()}", value)
    messages = [m for m in checks.check_limits() if m.msg.startswith(f"FTPSERVER_{name.upper()} ")]
    problem = None if value is None else limit_problem(name, value)
    if problem is None:
        assert messages == []
    else:
        assert [m.msg for m in messages] == [f"FTPSERVER_{name.upper()} {problem}."]
        assert messages[0].id == "django_ftpserver.E013" and messages[0].hint


@pytest.mark.parametrize(
    ("part_size", "threads", "named"),
    [
        ("big", 4, ["FTPSERVER_S3_PART_SIZE must be a whole number, not 'big'."]),
        (8 * 1024 * 1024, "x", ["FTPSERVER_S3_UPLOAD_THREADS must be a whole number, not 'x'."]),
        (1024, 0, ["FTPSERVER_S3_PART_SIZE ", "FTPSERVER_S3_UPLOAD_THREADS "]),
    ],
)
def test_e020_names_each_bad_setting(
    settings, part_size: Any, threads: Any, named: list[str]
) -> None:
    settings.FTPSERVER_S3_PART_SIZE = part_size
    settings.FTPSERVER_S3_UPLOAD_THREADS = threads
    messages = checks.check_s3_uploads()
    assert [m.id for m in messages] == ["django_ftpserver.E020"] * len(named)
    for message, start in zip(messages, named, strict=True):
        assert message.msg.startswith(start)
        assert message.hint


def test_e020_accepts_what_the_s3_code_accepts(settings) -> None:
    # conf.S3_PART_SIZE is int(setting): a whole number as text works there.
    settings.FTPSERVER_S3_PART_SIZE = str(16 * 1024 * 1024)
    settings.FTPSERVER_S3_UPLOAD_THREADS = 2
    assert checks.check_s3_uploads() == []


def test_e012_and_e006_wording(settings) -> None:
    settings.FTPSERVER_PROXY_PROTOCOL_TIMEOUT = 0
    settings.FTPSERVER_TIMEOUT = -2
    e012 = [m for m in checks.check_proxy_protocol() if m.id == "django_ftpserver.E012"]
    assert [m.msg for m in e012] == [
        "FTPSERVER_PROXY_PROTOCOL_TIMEOUT must be more than 0 seconds, not 0."
    ]
    assert [m.msg for m in checks.check_timeouts()] == [
        "FTPSERVER_TIMEOUT must be 0 or more seconds, not -2."
    ]
    settings.FTPSERVER_TIMEOUT = None  # pyftpdlib's own
    assert checks.check_timeouts() == []
