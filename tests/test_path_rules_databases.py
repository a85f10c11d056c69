"""Path rules against the real PostgreSQL and MariaDB servers: the constraints
of migration 0003 and the write-only/read-only example."""

import pytest

from .test_path_rules import (  # noqa: F401  (fixtures and tests collected again here)
    carol,
    carol_home,
    staff,
    staff_account,
    test_incoming_is_write_only,
    test_reports_is_read_only,
    test_rule_full_clean,
    test_rule_needs_exactly_one_owner,
    test_snapshot_loads_rules_in_one_query,
)

pytestmark = [pytest.mark.postgres, pytest.mark.mysql]
