"""Servers in one process each have an event loop of their own.

pyftpdlib's servers default to one process-wide event loop. Two servers
started one after the other then shared it, polled from two threads, and
the first server's thread closed the second one's listening socket often
enough to fail a test that started two servers in a row.
"""

from __future__ import annotations

import io


def test_each_server_has_its_own_loop(server_factory):
    first, second = server_factory(), server_factory()
    assert first.runner.server.ioloop is not second.runner.server.ioloop


def test_servers_started_in_a_row_all_serve(server_factory, account, home):
    for round_ in range(5):
        server = server_factory()
        ftp = server.connect("alice")
        ftp.storbinary(f"STOR f{round_}.txt", io.BytesIO(b"data"))
        ftp.quit()
    assert sorted(p.name for p in home.iterdir()) == [f"f{i}.txt" for i in range(5)]
