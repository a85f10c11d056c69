"""The supported Django and Python versions are the same everywhere they are written.

pyproject.toml (classifiers, ``requires-python``, the Django requirement,
ruff's target), tox.ini (the test matrix), the Makefile (the newest
combination ``make test`` runs), docs/installation.rst (the table users
read) and the README each name them; a release that changes one must change
them all. ``make test-newest`` itself, and scripts/find-python that finds
its interpreter, are checked at the end.
"""

from __future__ import annotations

import configparser
import itertools
import os
import re
import shutil
import subprocess
import sys
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


def test_the_readme_names_the_supported_versions():
    readme = (ROOT / "README.rst").read_text()
    series = sorted(classifiers("Framework :: Django"))
    pythons = sorted(classifiers("Programming Language :: Python"))
    # Django's long-term support releases are the X.2 ones.
    names = [f"{major}.{minor}" + (" (LTS)" if minor == 2 else "") for major, minor in series]
    listed = ", ".join(names[:-1]) + f" and {names[-1]}"
    python_range = f"Python {pythons[0][0]}.{pythons[0][1]} to {pythons[-1][0]}.{pythons[-1][1]}"
    assert f"Django {listed} on {python_range}" in " ".join(readme.split())
    newest = f"Django {series[-1][0]}.{series[-1][1]} on Python {pythons[-1][0]}.{pythons[-1][1]}"
    assert newest in " ".join(readme.split())


# `make test` (and so CI, .ci/run) runs the newest combination, and fails
# there when it cannot.


def test_make_test_depends_on_test_newest():
    rule = re.search(r"^test: (.*)$", (ROOT / "Makefile").read_text(), flags=re.MULTILINE)
    assert rule, "the Makefile has no test target"
    assert {"test-sqlite", "test-newest"} <= set(rule[1].split())
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def make_test_newest(**env: str) -> subprocess.CompletedProcess[str]:
    """``make test-newest`` with no interpreter found for the newest Python."""
    if shutil.which("make") is None:
        pytest.skip("no make")
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "FTPSERVER_REQUIRE_SERVICES")}
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "test-newest", "NEWEST_PYTHON="],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_test_newest_without_its_python_skips_with_a_message():
    result = make_test_newest()
    assert result.returncode == 0, result.stderr
    newest = makefile_variable("NEWEST_DJANGO")
    assert f"test-newest: SKIPPED the SQLite suite on {newest}" in result.stderr
    assert "NEWEST_PYTHON=" in result.stderr  # says how to choose one


@pytest.mark.parametrize("env", [{"CI": "true"}, {"FTPSERVER_REQUIRE_SERVICES": "1"}])
def test_test_newest_without_its_python_fails_in_ci(env):
    result = make_test_newest(**env)
    assert result.returncode != 0
    assert "test-newest: required here" in result.stderr


def find_python(version: str, path_dir: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{path_dir}{os.pathsep}/usr/bin{os.pathsep}/bin", "HOME": str(home)}
    env["PYENV_ROOT"] = str(home / "no-pyenv")
    return subprocess.run(
        ["sh", str(ROOT / "scripts" / "find-python"), version],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_find_python_finds_a_working_interpreter_on_path(tmp_path):
    current = f"{sys.version_info[0]}.{sys.version_info[1]}"
    (tmp_path / f"python{current}").symlink_to(sys.executable)
    result = find_python(current, tmp_path, tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == str(tmp_path / f"python{current}")


def test_find_python_refuses_an_interpreter_of_another_series(tmp_path):
    # A pythonX.Y that runs another version (a pyenv shim of a version that
    # is not selected, a wrong link) is not taken.
    (tmp_path / "python3.99").symlink_to(sys.executable)
    result = find_python("3.99", tmp_path, tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
