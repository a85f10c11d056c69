"""Per-path permissions: which pyftpdlib letters apply where in a home.

Pure functions and a small value class, no Django: the models, the admin,
the commands and the session authorizer all use the same rules.

Semantics, in one place:

* A rule is a path inside the home, as the FTP client sees it
  (``"/incoming"``), and a permission string (``"w"``). The empty string is
  a valid permission: nothing is allowed there.
* A rule covers its path and everything below it, by path component: a
  rule on ``/in`` covers ``/in`` and ``/in/x`` but not ``/incoming``.
* For a given path, the rule with the longest matching path wins, whether
  it belongs to the account or to its group. When the account and its group
  both have a rule on that same path, the account's rule wins. So an account
  rule on ``/reports`` does not override a group rule on ``/reports/2024``
  for files under ``/reports/2024``: the deeper rule is the more specific one.
* Where no rule matches, the group's permission applies (as in 1.0).
* Renaming a directory moves everything below it, rules would not follow:
  ``"f"`` on a path is therefore granted only if every rule path strictly
  below it allows ``"f"`` too.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field

#: Every permission letter pyftpdlib knows (see ``pyftpdlib.authorizers``).
READ_PERMS = "elr"
WRITE_PERMS = "adfmwMT"
ALL_PERMS = READ_PERMS + WRITE_PERMS

#: Longest rule path accepted, in characters (the database column's size).
MAX_RULE_PATH_LENGTH = 255


class InvalidRule(ValueError):
    """A rule path or permission string that cannot be used; the message says why."""


def validate_permission_letters(permission: str) -> str:
    """Return ``permission`` if every letter is a pyftpdlib letter, else raise.

    The empty string is accepted (it forbids everything); repeated letters
    are not (they hint at a typo).
    """
    if not isinstance(permission, str):
        raise InvalidRule(f"permission must be a string of letters, not {permission!r}")
    unknown = sorted(set(permission) - set(ALL_PERMS))
    if unknown:
        raise InvalidRule(
            f"invalid permission {permission!r}: unknown letter(s) {''.join(unknown)!r}, "
            f"use letters of {ALL_PERMS!r}"
        )
    if len(set(permission)) != len(permission):
        raise InvalidRule(f"invalid permission {permission!r}: a letter is repeated")
    return permission


def normalize_rule_path(path: str) -> str:
    """Return the canonical form of rule path ``path`` or raise ``InvalidRule``.

    ``"incoming/"``, ``"/incoming"`` and ``"//incoming/."`` all become
    ``"/incoming"``. A ``..`` component is refused rather than resolved: a
    rule is meant to name a place inside the home, and ``/a/../b`` is more
    likely a mistake than a way to write ``/b``.
    """
    if not isinstance(path, str) or not path.strip():
        raise InvalidRule(f"invalid rule path {path!r}: give a path such as '/incoming'")
    if any(ord(char) < 32 or ord(char) == 127 for char in path):
        raise InvalidRule(f"invalid rule path {path!r}: control characters are not allowed")
    if "\\" in path:
        raise InvalidRule(f"invalid rule path {path!r}: use '/' as the separator")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise InvalidRule(f"invalid rule path {path!r}: '..' is not allowed")
    normalized = "/" + "/".join(parts)
    if len(normalized) > MAX_RULE_PATH_LENGTH:
        raise InvalidRule(
            f"invalid rule path {path[:40]!r}...: longer than {MAX_RULE_PATH_LENGTH} characters"
        )
    return normalized


def parse_rule(text: str) -> tuple[str, str]:
    """Parse ``"/incoming=w"`` into ``("/incoming", "w")``; raise ``InvalidRule``."""
    path, sep, permission = text.rpartition("=")
    if not sep:
        raise InvalidRule(f"invalid path rule {text!r}: expected PATH=PERMISSION, e.g. /incoming=w")
    return normalize_rule_path(path), validate_permission_letters(permission.strip())


def ftp_path_in_home(path: str, home: str) -> str | None:
    """The client-visible path of filesystem path ``path`` under ``home``.

    ``None`` when ``path`` is not ``home`` or below it. Purely textual, as
    pyftpdlib's ``AbstractedFS.ftp2fs`` builds its paths by joining the
    home and the normalized FTP path.
    """
    home = os.path.normpath(home)
    path = os.path.normpath(path)
    if path == home:
        return "/"
    prefix = home if home.endswith(os.sep) else home + os.sep
    if not path.startswith(prefix):
        return None
    rest = path[len(prefix) :]
    if os.sep != "/":  # pragma: no cover - Windows
        rest = rest.replace(os.sep, "/")
    return "/" + rest


def climbs_above_root(cwd: str, path: str) -> bool:
    """Whether FTP path ``path``, taken from ``cwd``, goes above ``/`` on the way.

    pyftpdlib clamps such paths to the home (``../x`` at the root is
    ``/x``); a client that writes them is probing, or confused about where it
    is, and is better told so than served another file.
    """
    full = path if path.startswith("/") else f"{cwd}/{path}"
    depth = 0
    for part in full.split("/"):
        if part in ("", "."):
            continue
        depth += -1 if part == ".." else 1
        if depth < 0:
            return True
    return False


def _ancestors(ftp_path: str) -> Iterable[str]:
    """``"/a/b"`` -> ``"/a/b"``, ``"/a"``, ``"/"``: the longest first."""
    path = posixpath.normpath("/" + ftp_path.lstrip("/"))
    while True:
        yield path
        if path == "/":
            return
        path = posixpath.dirname(path)


@dataclass(frozen=True)
class PathRules:
    """The rules of one account: its own and its group's, ready to answer from memory.

    ``account`` and ``group`` map normalized rule paths to permission strings.
    """

    default: str
    account: dict[str, str] = field(default_factory=dict)
    group: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.account or self.group)

    def __hash__(self) -> int:  # dicts inside: hash what defines the rules
        items = (tuple(sorted(self.account.items())), tuple(sorted(self.group.items())))
        return hash((self.default, *items))

    def perms_for(self, ftp_path: str) -> str:
        """The permission letters that apply at client-visible path ``ftp_path``."""
        if not self:
            return self.default
        return self.explain(ftp_path)[0]

    def explain(self, ftp_path: str) -> tuple[str, str | None, str | None]:
        """``(letters, owner, rule path)`` at ``ftp_path``.

        ``owner`` is ``"account"`` or ``"group"``; both are ``None`` when no
        rule matches and the group's permission applies.
        """
        for candidate in _ancestors(ftp_path):
            if candidate in self.account:
                return self.account[candidate], "account", candidate
            if candidate in self.group:
                return self.group[candidate], "group", candidate
        return self.default, None, None

    def has_perm(self, perm: str, ftp_path: str) -> bool:
        """Whether ``perm`` is allowed at ``ftp_path`` (see the module docstring)."""
        if perm not in self.perms_for(ftp_path):
            return False
        if perm == "f" and self:
            # A rename moves the subtree; every rule below must allow it too.
            base = posixpath.normpath("/" + ftp_path.lstrip("/"))
            prefix = base if base.endswith("/") else base + "/"
            for rule_path in {*self.account, *self.group}:
                if rule_path.startswith(prefix) and "f" not in self.perms_for(rule_path):
                    return False
        return True
