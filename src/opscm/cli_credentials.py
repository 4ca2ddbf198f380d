"""``opscm credentials add|list|remove``: access keys of a data dir, managed also while ``opscm serve`` runs.

The command opens the same database and master key as the server (SQLite in WAL mode lets both
work at once) and goes through :mod:`opscm.app.credentials`; the server looks keys up on every
request, so a new or removed key counts from the next request on.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

USAGE_ERROR = 2
REFUSED = 1


def add_credentials_parser(commands) -> None:
    credentials = commands.add_parser("credentials", help="add, list or remove access keys (also while serving)")
    subcommands = credentials.add_subparsers(dest="credentials_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, default=Path("opscm-data"), help="state directory (default ./opscm-data)")
    common.add_argument("--database-url", help="SQLAlchemy URL instead of the SQLite file in the data dir")

    add = subcommands.add_parser(
        "add", parents=[common], help="make a key; prints it as a shared-credentials profile section on stdout"
    )
    add.add_argument("--name", help="the key's user name, shown in AccessDeniedException (default key-<id suffix>)")
    add.add_argument(
        "--account", help="account id, or 'new' for a new account (default: the admin account, that of the oldest key)"
    )
    add.add_argument(
        "--actions",
        default="opsworks-cm:*",
        help="comma-separated IAM-style actions, e.g. opsworks-cm:AssociateNode,opsworks-cm:Describe* (default opsworks-cm:*)",
    )
    add.add_argument("--servers", help="comma-separated server names the key may touch (default: all of the account's)")
    add.add_argument("--profile", help="name of the printed profile section (default: the key's name)")
    add.add_argument("--region", default="us-east-1", help="region written into the profile section (default us-east-1)")
    add.set_defaults(run=_guarded(_add))

    listing = subcommands.add_parser("list", parents=[common], help="one line per key: id, name, account, actions, servers")
    listing.set_defaults(run=_guarded(_list))

    remove = subcommands.add_parser("remove", parents=[common], help="delete a key; refused at once by a running server")
    remove.add_argument("access_key_id")
    remove.add_argument("--force", action="store_true", help="also remove the last key of the admin account")
    remove.set_defaults(run=_guarded(_remove))


def _add(args: argparse.Namespace) -> int:
    from .app.credentials import (
        add_key,
        check_account,
        check_actions,
        check_name,
        check_server_names,
        ensure_admin,
        profile_section,
    )

    # Everything is checked before the data dir is touched.
    profile = check_name(args.profile, "profile name") if args.profile is not None else None
    if args.name is not None:
        check_name(args.name)
    if args.account is not None:
        check_account(args.account)
    actions = check_actions(_split(args.actions))
    servers = check_server_names(_split(args.servers)) if args.servers is not None else None
    args.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _Store(args) as store:
        created = ensure_admin(store.uow, store.box, args.data_dir, store.now())
        if created:
            print(f"opscm: admin credentials written to {created.resolve()}", file=sys.stderr)
        key = add_key(
            store.uow, store.box, store.now(), name=args.name, account=args.account, actions=actions, server_names=servers
        )
    sys.stdout.write(profile_section(profile or key.name, key, region=args.region))
    print(f"opscm: added {key.access_key_id} ({key.name}, account {key.account_id})", file=sys.stderr)
    return 0


def _list(args: argparse.Namespace) -> int:
    from .app.credentials import list_keys

    _require_data_dir(args)
    with _Store(args) as store:
        keys = list_keys(store.uow)
    for key in keys:
        servers = ",".join(key.server_names) if key.server_names is not None else "*"
        print("\t".join((key.access_key_id, key.name, key.account_id, ",".join(key.actions), servers)))
    return 0


def _remove(args: argparse.Namespace) -> int:
    from .app.credentials import remove_key

    _require_data_dir(args)
    with _Store(args) as store:
        key = remove_key(store.uow, args.access_key_id, force=args.force)
    print(f"opscm: removed {key.access_key_id} ({key.name}, account {key.account_id})", file=sys.stderr)
    return 0


class _Store:
    """The data dir's database and master key, opened as ``opscm serve`` opens them."""

    def __init__(self, args: argparse.Namespace):
        from .app.composition import Settings, UtcClock, open_store
        from .app.secret_box import AesGcmBox

        database_url = args.database_url or os.environ.get("OPSCM_DATABASE_URL")
        settings = Settings(data_dir=args.data_dir, database_url=database_url)
        self._database, self.uow, master_key = open_store(settings)
        self.box = AesGcmBox(master_key)
        self.now = UtcClock().now

    def __enter__(self) -> _Store:
        return self

    def __exit__(self, *exc) -> None:
        self.uow.close()
        self._database.dispose()


def _guarded(command):
    """A bad argument exits 2, a refusal (unknown key, the admin's last key) exits 1."""

    def run(args: argparse.Namespace) -> int:
        from .app.credentials import CredentialsError
        from .app.secret_box import MasterKeyError

        try:
            return command(args)
        except ValueError as error:
            return _fail(error, USAGE_ERROR)
        except (CredentialsError, MasterKeyError) as error:
            return _fail(error, REFUSED)

    return run


def _require_data_dir(args: argparse.Namespace) -> None:
    from .app.credentials import CredentialsError

    # The data dir holds the SQLite database and the master key unless both come from elsewhere.
    database_url = args.database_url or os.environ.get("OPSCM_DATABASE_URL")
    if not args.data_dir.is_dir() and not (database_url and os.environ.get("OPSCM_MASTER_KEY")):
        raise CredentialsError(f"there is no data dir {args.data_dir}")


def _split(value: str) -> list[str]:
    items = [item.strip() for item in value.split(",")]
    if not all(items):
        raise ValueError(f"'{value}' has an empty item")
    return items


def _fail(message, status: int) -> int:
    print(f"opscm credentials: {message}", file=sys.stderr)
    return status
