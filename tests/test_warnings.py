"""Deprecations raised from our own code fail the tests; other packages' do not.

pyproject.toml's ``filterwarnings`` turns a ``DeprecationWarning`` or
``PendingDeprecationWarning`` into an error when the module it is attributed
to is ``django_ftpserver`` (or one of its submodules) or ``tests``. That
module is the one whose frame the warning points at: the caller's, for
Django's and the standard library's deprecations. These tests run code as
if it were written in a given module (a frame with that ``__name__``) and
check which warnings the configuration raises, which it lets through and
which it ignores.
"""

from __future__ import annotations

import datetime
import sys
import warnings
from pathlib import Path
from typing import Any

import django
import pytest
from django.contrib import admin
from django.db import models

import django_ftpserver

from .conftest import DeprecationErrors, wait_until

PACKAGE_DIR = Path(django_ftpserver.__file__).resolve().parent
UTCFROMTIMESTAMP = (
    "datetime.datetime.utcfromtimestamp() is deprecated and scheduled for removal in a "
    "future version."
)


def run_in_module(module: str, source: str, **names: Any) -> None:
    """Run ``source`` in a frame of module ``module``, as code written there would run."""
    top, *rest = module.split(".")
    directory = PACKAGE_DIR if top == "django_ftpserver" else PACKAGE_DIR.parent / top
    filename = str(directory.joinpath(*rest[:-1], f"{rest[-1] if rest else '__init__'}.py"))
    exec(compile(source, filename, "exec"), {**names, "__name__": module})


def deprecated_api(category: type[Warning] = DeprecationWarning) -> None:
    """A deprecated function as Django and the standard library write one."""
    warnings.warn("deprecated_api() is deprecated", category, stacklevel=2)


@pytest.mark.parametrize(
    "module",
    [
        "django_ftpserver",
        "django_ftpserver.handlers",
        "django_ftpserver.management.commands.ftpserver",
        "django_ftpserver.migrations.0003_path_rules",
        "tests.test_sessions",
    ],
)
@pytest.mark.parametrize("category", [DeprecationWarning, PendingDeprecationWarning])
def test_a_deprecated_call_from_our_code_is_an_error(module: str, category: type[Warning]):
    with pytest.raises(category, match=r"deprecated_api\(\) is deprecated"):
        run_in_module(
            module, "deprecated_api(category)", deprecated_api=deprecated_api, category=category
        )


@pytest.mark.parametrize(
    "module",
    ["django.db.models.base", "pyftpdlib.handlers", "django_ftpserverx", "testsuite", "__main__"],
)
def test_a_deprecated_call_from_other_code_is_left_alone(module: str):
    with warnings.catch_warnings(record=True) as caught:  # keeps the configured filters
        run_in_module(module, "deprecated_api()", deprecated_api=deprecated_api)
    assert [(w.category, str(w.message)) for w in caught] == [
        (DeprecationWarning, "deprecated_api() is deprecated")
    ]


def test_the_known_pyftpdlib_warning_is_ignored_from_pyftpdlib_only():
    source = "warnings.warn(message, DeprecationWarning)"
    names = {"warnings": warnings, "message": UTCFROMTIMESTAMP}
    with warnings.catch_warnings(record=True) as caught:
        run_in_module("pyftpdlib.handlers.ftp.control", source, **names)
    assert caught == []
    with pytest.raises(DeprecationWarning, match="utcfromtimestamp"):
        run_in_module("django_ftpserver.handlers", source, **names)


# Real deprecations of the standard library and of each supported Django
# series, called from our code: each is an error.


@pytest.mark.skipif(sys.version_info < (3, 12), reason="deprecated in Python 3.12")
def test_a_deprecated_standard_library_call_is_an_error():
    with pytest.raises(DeprecationWarning, match="utcfromtimestamp"):
        run_in_module(
            "django_ftpserver.handlers", "datetime.datetime.utcfromtimestamp(0)", datetime=datetime
        )


@pytest.mark.skipif(django.VERSION[:2] != (5, 2), reason="deprecated in 5.1, removed in 6.0")
def test_a_deprecated_django_5_2_argument_is_an_error():
    source = "models.CheckConstraint(check=models.Q(path__gt=''), name='probe')"
    with pytest.raises(DeprecationWarning, match="CheckConstraint.check is deprecated"):
        run_in_module("django_ftpserver.models", source, models=models)


@pytest.mark.skipif(django.VERSION[:2] < (6, 1), reason="deprecated in Django 6.1")
def test_a_deprecated_django_6_1_setting_is_an_error():
    source = "class ProbeAdmin(admin.ModelAdmin):\n    list_select_related = True\n"
    with pytest.raises(PendingDeprecationWarning, match="list_select_related"):
        run_in_module("django_ftpserver.admin", source, admin=admin)


# On a server thread the error is logged, not raised to the test: conftest's
# deprecation_errors fixture fails the test then.


def test_a_deprecation_on_a_server_thread_fails_the_test(
    ftp, recorder, deprecation_errors: DeprecationErrors
):
    def receiver(sender: Any, **kwargs: Any) -> None:
        run_in_module(
            "django_ftpserver.handlers", "deprecated_api()", deprecated_api=deprecated_api
        )

    from django_ftpserver import signals

    signals.ftp_directory_created.connect(receiver, weak=False)
    try:
        ftp.mkd("new")
        recorder.wait("ftp_directory_created")
        wait_until(lambda: deprecation_errors.errors, what="the logged deprecation")
    finally:
        signals.ftp_directory_created.disconnect(receiver)
    assert "DeprecationWarning raised as an error on a server thread" in (
        deprecation_errors.describe()
    )
    assert "deprecated_api() is deprecated" in deprecation_errors.describe()
    deprecation_errors.errors.clear()  # it was expected: the test itself passes
