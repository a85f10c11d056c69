"""A password hasher that counts and can hold its checks, for the session tests.

A real PBKDF2 hasher (few iterations, so tests stay fast) whose ``verify``
records the thread it ran on and can wait on a gate or a barrier: the tests
prove where and how often hashing happens by counting, not by timing.
"""

from __future__ import annotations

import threading

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class CountingHasher(PBKDF2PasswordHasher):
    algorithm = "counting_pbkdf2"
    iterations = 1000

    lock = threading.Lock()
    threads: list[str] = []
    #: When set, each check waits for it to be set (a check "in progress").
    gate: threading.Event | None = None
    #: When set, each check waits at it: passes only with concurrent checks.
    barrier: threading.Barrier | None = None

    @classmethod
    def reset(cls) -> None:
        with cls.lock:
            cls.threads = []
        cls.gate = None
        cls.barrier = None

    @classmethod
    def calls(cls) -> int:
        with cls.lock:
            return len(cls.threads)

    def verify(self, password: str, encoded: str) -> bool:
        with self.lock:
            type(self).threads.append(threading.current_thread().name)
        if self.barrier is not None:
            self.barrier.wait(timeout=10)
        if self.gate is not None:
            self.gate.wait(timeout=10)
        return super().verify(password, encoded)
