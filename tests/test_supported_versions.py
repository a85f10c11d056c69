"""The supported Django and Python versions are the same everywhere they are written.

pyproject.toml (classifiers, ``requires-python``, the Django requirement,
ruff's target), tox.ini (the test matrix), the Makefile (the newest
combination ``make test`` runs) and docs/installation.rst (the table users
read) each name them; a release that changes one must change them all.
"""

from __future__ import annotations

import configparser
import itertools
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

Version = tuple[int, int]


def version(text: str) -> Version:
    major, minor = text.split(".")
    return int(major), int(minor)


def series_range(series: Version) -> str:
    """The requirement for one Django series: X.0, X.1 and X.2 (LTS), then X+1.0."""
    major, minor = series
    after = (major, minor + 1) if minor < 2 else (major + 1, 0)
    return f"Django>={major}.{minor},<{after[0]}.{after[1]}"


def pyproject() -> dict[str, Any]:
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def expand_braces(pattern: str) -> list[str]:
    """tox's ``py{310,311}-django{52,60}`` into every name it stands for."""
    parts = re.split(r"\{([^}]*)\}", pattern)
    choices = [[part] if i % 2 == 0 else part.split(",") for i, part in enumerate(parts)]
    return ["".join(combo) for combo in itertools.product(*choices)]


def tox_matrix() -> dict[Version, set[Version]]:
    """Django series -> the Pythons tox runs it on."""
    config = configparser.ConfigParser()
    config.read(ROOT / "tox.ini")
    matrix: dict[Version, set[Version]] = {}
    for line in config["tox"]["env_list"].split():
        for name in expand_braces(line):
            match = re.fullmatch(r"py3(\d+)-django(\d)(\d)", name)
            if match:
                python = (3, int(match[1]))
                matrix.setdefault((int(match[2]), int(match[3])), set()).add(python)
    return matrix


def tox_django_requirements() -> dict[Version, str]:
    config = configparser.ConfigParser()
    config.read(ROOT / "tox.ini")
    requirements = {}
    for line in config["testenv"]["deps"].strip().splitlines():
        factor, requirement = (part.strip() for part in line.split(":", 1))
        digits = re.fullmatch(r"django(\d)(\d)", factor)
        assert digits, f"unexpected tox factor {factor!r}"
        requirements[(int(digits[1]), int(digits[2]))] = requirement
    return requirements


def docs_table() -> dict[Version, set[Version]]:
    """docs/installation.rst's table: Django series -> Pythons."""
    text = (ROOT / "docs" / "installation.rst").read_text()
    row = re.compile(r"^(\d+\.\d+)(?: \(LTS\))?\s+3\.(\d+) (to|and) 3\.(\d+)\s", re.MULTILINE)
    table = {}
    for match in row.finditer(text):
        low, high = int(match[2]), int(match[4])
        minors = range(low, high + 1) if match[3] == "to" else (low, high)
        table[version(match[1])] = {(3, minor) for minor in minors}
    assert table, "docs/installation.rst has no table of supported versions"
    return table


def classifiers(prefix: str) -> set[Version]:
    found = set()
    for classifier in pyproject()["project"]["classifiers"]:
        match = re.fullmatch(re.escape(prefix) + r" :: (\d+\.\d+)", classifier)
        if match:
            found.add(version(match[1]))
    return found


def makefile_variable(name: str) -> str:
    match = re.search(rf"^{name} \?= (.*)$", (ROOT / "Makefile").read_text(), flags=re.MULTILINE)
    assert match, f"the Makefile does not set {name}"
    return match[1].strip()


def test_the_django_series_agree():
    series = classifiers("Framework :: Django")
    assert series, "no Framework :: Django :: X.Y classifier"
    assert set(tox_matrix()) == series
    assert set(tox_django_requirements()) == series
    assert set(docs_table()) == series
    oldest = min(series)
    assert f"Django>={oldest[0]}.{oldest[1]}" in pyproject()["project"]["dependencies"]


def test_each_series_is_tested_on_the_pythons_the_docs_give():
    assert tox_matrix() == docs_table()


def test_tox_pins_each_series():
    for series, requirement in tox_django_requirements().items():
        assert requirement == series_range(series)


def test_the_python_versions_agree():
    pythons = classifiers("Programming Language :: Python")
    assert pythons, "no Programming Language :: Python :: 3.N classifier"
    assert set().union(*tox_matrix().values()) == pythons
    oldest = min(pythons)
    project = pyproject()
    assert project["project"]["requires-python"] == f">={oldest[0]}.{oldest[1]}"
    assert project["tool"]["ruff"]["target-version"] == f"py{oldest[0]}{oldest[1]}"


def test_make_test_runs_the_newest_combination():
    newest_python = max(classifiers("Programming Language :: Python"))
    newest_django = max(classifiers("Framework :: Django"))
    assert version(makefile_variable("NEWEST_PYTHON_VERSION")) == newest_python
    assert makefile_variable("NEWEST_DJANGO") == series_range(newest_django)
    assert newest_python in tox_matrix()[newest_django]
