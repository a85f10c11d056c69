"""Loading an account: one query, one frozen snapshot for the whole session.

``AccountLookup`` holds the queries of a login (the account with its user
and group, then its path rules), built by the ORM once and then only
executed; ``AccountSnapshot`` is what a session keeps of the account, so
that nothing touches the database after login.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connections, router
from django.db.models import Exists, OuterRef, Q

from .. import models
from ..policy.quotas import Limits
from .permissions import PathRules, ftp_path_in_home


@dataclass(frozen=True)
class AccountSnapshot:
    """What a session needs of an account, read once at login.

    ``rules`` holds the account's path rules and its group's (one query at
    login), so permission checks during the session run no SQL.
    """

    username: str
    user_pk: Any
    account_pk: Any
    home_dir: str
    permission: str
    rules: PathRules | None = None
    #: The account's quota (``policy.quotas.Limits``), None when nothing limits it.
    limits: Limits | None = None

    @classmethod
    def from_account(cls, account: models.FTPUserAccount) -> AccountSnapshot:
        return cls(
            username=account.get_username(),
            user_pk=account.user_id,
            account_pk=account.pk,
            home_dir=account.get_home_dir(),
            permission=account.get_perms(),
            rules=account.get_path_rules(),
            limits=account.get_limits(),
        )

    def ftp_path(self, path: str) -> str | None:
        """Client-visible path of filesystem path ``path``; ``None`` outside the home."""
        return ftp_path_in_home(path, self.home_dir)

    def perms_for(self, path: str | None) -> str:
        """The letters that apply at filesystem path ``path`` (``""`` outside the home)."""
        if path is None or not self.rules:
            return self.permission
        ftp_path = self.ftp_path(path)
        return "" if ftp_path is None else self.rules.perms_for(ftp_path)

    def has_perm(self, perm: str, path: str | None = None) -> bool:
        """``perm`` at filesystem path ``path``, as pyftpdlib asks it.

        pyftpdlib passes paths under the home (it refuses others before
        asking); a path outside the home has no permission at all.
        """
        if path is None or not self.rules:
            return perm in self.permission
        ftp_path = self.ftp_path(path)
        return ftp_path is not None and self.rules.has_perm(perm, ftp_path)


class AccountLookup:
    """The queries of a cached login, compiled once per database.

    A cached login reads the account with its user and group, and whether
    any path rule concerns it (one query), then those rules if there are
    some (another). Compiling the
    account query (a join of account, user and group) costs
    Django's ORM about 0.3 ms of CPU under the GIL, more than all the rest
    of a cached login; a burst of 100 logins spent most of its time there.
    The SQL is built by the ORM once, for the model and user model in use,
    and then only executed. Rows come back as plain values, normalized with
    each field's ``to_python`` so that they compare equal to the values of
    model instances (the cache fingerprint is built from those at a miss).
    """

    # Stand-ins for the parameters when compiling: a username no one has,
    # primary keys no row has (our models' keys are integers).
    _USERNAME = "\x00django-ftpserver-username\x00"
    _ACCOUNT_PK = -2_147_483_641
    _GROUP_PK = -2_147_483_637

    def __init__(self, model: type[models.FTPUserAccount]) -> None:
        self.model = model
        self.user_model = get_user_model()
        username_field = self.user_model.USERNAME_FIELD
        self._has_is_active = any(
            f.name == "is_active" for f in self.user_model._meta.concrete_fields
        )
        self._names = [
            "pk",
            "user_id",
            "group_id",
            "home_dir",
            f"user__{username_field}",
            "user__password",
            "group__home_dir",
            "group__permission",
            "quota_bytes",
            "quota_files",
            "group__quota_bytes",
            "group__quota_files",
        ]
        if self._has_is_active:
            self._names.append("user__is_active")
        self._filter = f"user__{username_field}"
        self._compiled: dict[str, tuple[tuple[str, list[Any]] | None, ...]] = {}
        self._compiled_many: dict[tuple[str, int], tuple[str, list[Any]] | None] = {}
        meta = model._meta
        self._account_pk = meta.pk.to_python
        self._user_pk = meta.get_field("user").target_field.to_python
        self._group_pk = meta.get_field("group").target_field.to_python

    @staticmethod
    def _compiled_sql(queryset: Any, alias: str, *stand_ins: Any) -> tuple[str, list[Any]] | None:
        """SQL and parameters of ``queryset``; ``None`` unless each stand-in is there once."""
        sql, params = queryset.query.get_compiler(using=alias).as_sql()
        params = list(params)
        if any(params.count(stand_in) != 1 for stand_in in stand_ins):
            return None  # a backend that rewrites the values: use the ORM
        return sql, params

    def _accounts(self, alias: str, **filters: Any) -> Any:
        """The account rows matching ``filters``, as ``fetch`` reads them."""
        # Whether any path rule concerns the account, in the same query: the
        # rules themselves are read only when there are some.
        has_rules = Exists(
            models.FTPPathRule._default_manager.using(alias).filter(
                Q(account_id=OuterRef("pk")) | Q(group_id=OuterRef("group_id"))
            )
        )
        return (
            self.model._default_manager.using(alias)
            .filter(**filters)
            .annotate(_has_rules=has_rules)
            .values_list(*self._names, "_has_rules")
        )

    def _compile(self, alias: str) -> tuple[tuple[str, list[Any]] | None, ...]:
        account = self._compiled_sql(
            self._accounts(alias, **{self._filter: self._USERNAME}), alias, self._USERNAME
        )
        rules = self._compiled_sql(
            models.FTPPathRule._default_manager.using(alias)
            .filter(Q(account_id=self._ACCOUNT_PK) | Q(group_id=self._GROUP_PK))
            .values_list("account_id", "path", "permission"),
            alias,
            self._ACCOUNT_PK,
            self._GROUP_PK,
        )
        return account, rules

    @staticmethod
    def _execute(alias: str, compiled: tuple[str, list[Any]], values: dict[Any, Any]) -> list:
        sql, params = compiled
        with connections[alias].cursor() as cursor:
            cursor.execute(sql, [values.get(param, param) for param in params])
            return cursor.fetchall()

    def _queries(self, alias: str) -> tuple[tuple[str, list[Any]] | None, ...]:
        if alias not in self._compiled:
            self._compiled[alias] = self._compile(alias)
        return self._compiled[alias]

    def fetch(self, username: str) -> dict[str, Any] | None:
        """The account row of ``username``, or ``None`` (none, or no fast path)."""
        alias = router.db_for_read(self.model)
        account, rules = self._queries(alias)
        if account is None or rules is None:
            return None
        rows = self._execute(alias, account, {self._USERNAME: username})
        if len(rows) != 1:
            return None
        return self._row(rows[0], alias)

    def _row(self, values: Any, alias: str) -> dict[str, Any]:
        row = dict(zip([*self._names, "_has_rules"], values, strict=True))
        row["pk"] = self._account_pk(row["pk"])
        row["user_id"] = self._user_pk(row["user_id"])
        row["group_id"] = self._group_pk(row["group_id"])
        row["user__is_active"] = bool(row.get("user__is_active", True))
        row["_alias"] = alias
        return row

    def fetch_many(self, usernames: list[str]) -> dict[str, dict[str, Any] | None]:
        """What ``fetch`` returns for each of ``usernames``, in one query.

        Usernames left out of the result are to be fetched one by one: all
        of them when a row matched a name it does not spell exactly (a
        case- or accent-insensitive collation), since ``fetch`` would then
        find several rows, or one spelled otherwise. The query is compiled
        once for each power-of-two count of names, the list padded with its
        last name.
        """
        names = list(dict.fromkeys(usernames))
        if len(names) == 1:
            return {names[0]: self.fetch(names[0])}
        alias = router.db_for_read(self.model)
        size = 1 << (len(names) - 1).bit_length()
        if (alias, size) not in self._compiled_many:
            stand_ins = [f"{self._USERNAME}{index}" for index in range(size)]
            self._compiled_many[alias, size] = self._compiled_sql(
                self._accounts(alias, **{f"{self._filter}__in": stand_ins}), alias, *stand_ins
            )
        compiled = self._compiled_many[alias, size]
        if compiled is None or None in self._queries(alias):
            return {}
        padded = names + names[-1:] * (size - len(names))
        params = {f"{self._USERNAME}{index}": name for index, name in enumerate(padded)}
        rows = [self._row(found, alias) for found in self._execute(alias, compiled, params)]
        by_name = {row[self._names[4]]: row for row in rows}
        if len(by_name) != len(rows) or not by_name.keys() <= set(names):
            return {}
        return {name: by_name.get(name) for name in names}

    def path_rules(self, row: dict[str, Any]) -> PathRules:
        """The account's and its group's path rules, as ``FTPUserAccount.get_path_rules``."""
        alias = row["_alias"]
        _, rules = self._compiled[alias]
        account_rules: dict[str, str] = {}
        group_rules: dict[str, str] = {}
        if not row["_has_rules"]:
            return PathRules(row["group__permission"], account_rules, group_rules)
        values = {self._ACCOUNT_PK: row["pk"], self._GROUP_PK: row["group_id"]}
        for account_id, path, permission in self._execute(alias, rules, values):
            (account_rules if account_id is not None else group_rules)[path] = permission
        return PathRules(row["group__permission"], account_rules, group_rules)

    def fingerprint(self, row: dict[str, Any]) -> tuple:
        """Equal to ``FTPAccountAuthorizer._fingerprint`` of the same account."""
        return (
            row["user_id"],
            row["user__password"],
            row["user__is_active"],
            row["pk"],
            row["group_id"],
        )

    def snapshot(self, row: dict[str, Any]) -> AccountSnapshot:
        """The snapshot, through the model's own methods, without a query.

        The methods run on a stand-in holding the row's values: three model
        instances would cost more than the query itself.
        """
        username = row[self._names[4]]

        def get_username() -> str:
            return username

        group = SimpleNamespace(
            pk=row["group_id"], home_dir=row["group__home_dir"], permission=row["group__permission"]
        )
        account = SimpleNamespace(
            pk=row["pk"],
            user_id=row["user_id"],
            group_id=row["group_id"],
            group=group,
            home_dir=row["home_dir"],
            user=SimpleNamespace(get_username=get_username),
            get_username=get_username,
        )
        model = models.FTPUserAccount
        return AccountSnapshot(
            username=username,
            user_pk=row["user_id"],
            account_pk=row["pk"],
            home_dir=model.get_home_dir(account),  # type: ignore[arg-type]
            permission=model.get_perms(account),  # type: ignore[arg-type]
            rules=self.path_rules(row),
            limits=Limits.resolve(
                row["quota_bytes"],
                row["quota_files"],
                row["group__quota_bytes"],
                row["group__quota_files"],
            ),
        )
