"""Quotas against the real PostgreSQL and MariaDB servers: migration 0004, the
atomic F() updates of the usage, and the edges through real sessions."""

import pytest

from .test_quotas import (  # noqa: F401  (fixtures and tests collected again here)
    site,
    test_concurrent_sessions_cannot_exceed_together,
    test_create_commands_take_quotas,
    test_delete_frees_space,
    test_exact_limit_then_full,
    test_ftpquota_show_and_recalc,
    test_one_byte_over_is_cut_and_removed,
    test_overwrite_counts_the_difference,
)

pytestmark = [pytest.mark.postgres, pytest.mark.mysql]
