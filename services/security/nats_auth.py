"""NATS identities, one per role, and what each may publish and subscribe to.

The roles are DESIGN.md's: `admin`, `writer`, `projector`, `alerter`, `api`, `auditor`,
`safety` and `site:<site_id>` per site. Permissions are allow-lists: anything not named is
denied. Only `admin` may create, update, delete or purge a stream; the LEDGER's own
`deny_delete`/`deny_purge` hold even for admin (the server refuses to lift them).

Every identity is an nkey user: its credential is a standard seed file `<user>.nk` (what
`nats --nkey FILE` and nats-py's `nkeys_seed=` read); the server knows only the public key.
Every identity has its own inbox prefix `_INBOX_<user>`: replies to a site's requests land on
a prefix only that site may subscribe to, so no other site (or service) can read them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import nkeys

from events import SPONSOR_SITE
from events.subjects import (
    ALERTS_STREAM,
    ALERTS_SUBJECTS,
    LEDGER_STREAM,
    LEDGER_SUBJECTS,
    SAFETY_SITE,
    intake_wildcard,
    site_intake_wildcard,
)
from services.ledger.connection import inbox_prefix

SEED_SUFFIX = ".nk"
SERVICE_ROLES = ("admin", "writer", "projector", "alerter", "api", "auditor", "safety")
JS_API = "$JS.API"
# Stream management: allowed to admin only, and denied explicitly to everybody else so that a
# widened allow-list can never grant it by accident.
STREAM_ADMIN = tuple(
    f"{JS_API}.STREAM.{verb}.>"
    for verb in ("CREATE", "UPDATE", "DELETE", "PURGE", "MSG.DELETE", "SNAPSHOT", "RESTORE")
)


def site_role(site_id: str) -> str:
    return f"site:{site_id}"


def all_roles(sites: Iterable[str]) -> tuple[str, ...]:
    """Service roles, the sponsor (submits protocol parameters on `intake.<trial>._sponsor`,
    like a site on its own intake) and one identity per site."""
    return (*SERVICE_ROLES, site_role(SPONSOR_SITE), *(site_role(site) for site in sites))


def user_name(role: str) -> str:
    """The NATS user of a role: `site:site01` → `site-site01` (subject-token safe)."""
    return role.replace(":", "-")


@dataclass(frozen=True)
class Permissions:
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    allow_responses: bool = False
    deny: tuple[str, ...] = ()


# The alerter's durable consumer on LEDGER. Its position (ack floor) is what guarantees that
# no SAE goes unalerted, so no other role may name it in any consumer request.
ALERTER_DURABLE = "safety_alerter"


def read_stream_subjects(stream: str) -> tuple[str, ...]:
    """Reading a stream without any consumer: direct gets (services/ledger/direct.py).

    No `$JS.API.CONSUMER.*` subject at all: the server's nameless (ephemeral) create names the
    consumer only inside the request body, so a role allowed it could rewrite any durable by
    naming it there; and a wildcard delete reaches every durable. No `$JS.ACK` either: a
    reader never acknowledges anything, so it cannot ack another's messages."""
    return (
        f"{JS_API}.STREAM.INFO.{stream}",
        f"{JS_API}.STREAM.MSG.GET.{stream}",
        f"{JS_API}.DIRECT.GET.{stream}",
        f"{JS_API}.DIRECT.GET.{stream}.>",
    )


def own_durable_subjects(stream: str, durable: str) -> tuple[str, ...]:
    """Creating, updating, reading, pulling from, acknowledging and deleting one named durable
    consumer. Only the named forms: the nameless create is never granted (see above)."""
    return (
        f"{JS_API}.CONSUMER.CREATE.{stream}.{durable}",
        f"{JS_API}.CONSUMER.CREATE.{stream}.{durable}.>",
        f"{JS_API}.CONSUMER.DURABLE.CREATE.{stream}.{durable}",
        f"{JS_API}.CONSUMER.INFO.{stream}.{durable}",
        f"{JS_API}.CONSUMER.DELETE.{stream}.{durable}",
        f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{durable}",
        f"$JS.ACK.{stream}.{durable}.>",
    )


def any_durable_subjects(stream: str) -> tuple[str, ...]:
    """Named durables of any name on `stream`: for the one role that owns every durable there
    but the protected ones (the projector's are named per build and partition; officers name
    theirs). Subject permissions match whole tokens only, so a name prefix cannot be granted:
    ownership is by stream, and no other role holds any consumer right on that stream."""
    return (
        f"{JS_API}.CONSUMER.CREATE.{stream}.*",
        f"{JS_API}.CONSUMER.CREATE.{stream}.*.>",
        f"{JS_API}.CONSUMER.DURABLE.CREATE.{stream}.*",
        f"{JS_API}.CONSUMER.INFO.{stream}.*",
        f"{JS_API}.CONSUMER.DELETE.{stream}.*",
        f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.*",
        f"$JS.ACK.{stream}.>",
    )


def protected_consumer(stream: str, durable: str) -> tuple[str, ...]:
    """Every request that names `durable`: denied to all roles but its owner (and admin)."""
    return (
        f"{JS_API}.CONSUMER.CREATE.{stream}.{durable}",
        f"{JS_API}.CONSUMER.CREATE.{stream}.{durable}.>",
        f"{JS_API}.CONSUMER.DURABLE.CREATE.{stream}.{durable}",
        f"{JS_API}.CONSUMER.DELETE.{stream}.{durable}",
        f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{durable}",
        f"$JS.ACK.{stream}.{durable}.>",
    )


# Roles that read without consumers are denied every consumer request and every ack, so that a
# widened allow-list can never hand them one by accident.
NO_CONSUMERS = (f"{JS_API}.CONSUMER.>", "$JS.ACK.>")


def _info(*streams: str) -> tuple[str, ...]:
    return (f"{JS_API}.STREAM.NAMES", *(f"{JS_API}.STREAM.INFO.{s}" for s in streams))


def permissions_for(role: str) -> Permissions:
    """What `role` may do on NATS (issue 6, "Security and tamper evidence"; issue 14 item 13:
    each role creates, updates and deletes only its own consumers)."""
    own_inbox = inbox_prefix(user_name(role)) + ".>"
    ledger = read_stream_subjects(LEDGER_STREAM)
    alerts = read_stream_subjects(ALERTS_STREAM)
    not_alerters = protected_consumer(LEDGER_STREAM, ALERTER_DURABLE)
    if role.startswith("site:"):
        site = role.split(":", 1)[1]
        # No JetStream API at all: a site talks to the writer and hears only its own replies.
        return Permissions(publish=(site_intake_wildcard(site),), subscribe=(own_inbox,))
    match role:
        case "admin":
            return Permissions(publish=(">",), subscribe=(">",), allow_responses=True)
        case "writer":
            return Permissions(
                publish=(LEDGER_SUBJECTS, *ledger, *_info(ALERTS_STREAM)),
                # LEDGER_SUBJECTS: other writers' appends wake its tail (writer/ledger_tail.py)
                subscribe=(intake_wildcard(), LEDGER_SUBJECTS, own_inbox),
                allow_responses=True,  # the verdict goes to the submitting site's inbox
                deny=NO_CONSUMERS,
            )
        case "projector":
            # Every LEDGER durable but the alerter's is a projection's (no other role holds
            # any LEDGER consumer right); nothing on ALERTS.
            return Permissions(
                publish=(*ledger, *any_durable_subjects(LEDGER_STREAM), *_info(ALERTS_STREAM)),
                subscribe=(own_inbox,),
                deny=not_alerters,
            )
        case "alerter":
            return Permissions(
                publish=(
                    ALERTS_SUBJECTS,
                    *ledger,
                    *own_durable_subjects(LEDGER_STREAM, ALERTER_DURABLE),
                    *alerts,
                ),
                subscribe=(own_inbox,),
            )
        case "api":
            # Read-only across sites; the live alert feed is a plain subscription.
            return Permissions(
                publish=(*ledger, *alerts),
                subscribe=(own_inbox, ALERTS_SUBJECTS),
                deny=NO_CONSUMERS,
            )
        case "auditor":
            return Permissions(
                publish=(*ledger, *_info(ALERTS_STREAM)), subscribe=(own_inbox,), deny=NO_CONSUMERS
            )
        case "safety":
            # Officers' durables on ALERTS (`alerts follow --durable NAME`) are this role's.
            return Permissions(
                publish=(
                    site_intake_wildcard(SAFETY_SITE),
                    *alerts,
                    *any_durable_subjects(ALERTS_STREAM),
                    *_info(LEDGER_STREAM),
                ),
                subscribe=(own_inbox, ALERTS_SUBJECTS),
            )
    raise ValueError(f"unknown role {role!r}")


def _quoted(values: Iterable[str]) -> str:
    return "[" + ", ".join(f'"{value}"' for value in values) + "]"


def render_user(role: str, nkey: str) -> str:
    """One `users` entry; `nkey` is config text: a quoted public key or `$ENV_VAR`."""
    perms = permissions_for(role)
    denied = () if role == "admin" else (*STREAM_ADMIN, *perms.deny)
    deny = f", deny: {_quoted(denied)}" if denied else ""
    lines = [
        f"    {{ nkey: {nkey}, permissions: {{  # {user_name(role)}",
        f"        publish: {{ allow: {_quoted(perms.publish)}{deny} }}",
        f"        subscribe: {{ allow: {_quoted(perms.subscribe)} }}",
    ]
    if perms.allow_responses:
        lines.append("        allow_responses: true")
    lines.append("    } }")
    return "\n".join(lines)


def render_authorization(roles: Iterable[str], nkey: Callable[[str], str]) -> str:
    """The nats.conf `authorization` block for `roles`: one nkey user per role."""
    users = "\n".join(render_user(role, nkey(role)) for role in roles)
    return f"authorization {{\n  users = [\n{users}\n  ]\n}}\n"


def env_nkey(role: str) -> str:
    """Static deployments read each user's public nkey from the environment
    (`$SITE_SITE01_NKEY`): public keys are not secret, but they differ per deployment."""
    return "$" + user_name(role).upper().replace("-", "_") + "_NKEY"


def credentials_dir(data_dir: Path) -> Path:
    return data_dir / "credentials"


def seed_file_name(role: str) -> str:
    """A role's seed file is named after its NATS user: the clients take their inbox prefix
    from it (services/ledger/connection.py)."""
    return f"{user_name(role)}{SEED_SUFFIX}"


def new_user_seed() -> bytes:
    """A fresh nkey user seed (`SU...`), the standard file content for `nats --nkey`."""
    return bytes(nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER))


def public_key(seed_path: Path) -> str:
    """The user's public nkey (`U...`) from its seed file."""
    pair = nkeys.from_seed(bytearray(seed_path.read_bytes().strip()))
    try:
        return bytes(pair.public_key).decode()
    finally:
        pair.wipe()


def write_private(path: Path, content: bytes) -> None:
    """Create `path` with mode 0600 from the first byte on (never readable by others)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
    path.chmod(0o600)


def ensure_seed(path: Path) -> Path:
    """A seed file at `path`, made once and kept across restarts."""
    if not path.exists():
        write_private(path, new_user_seed() + b"\n")
    return path


def ensure_identities(data_dir: Path, sites: Iterable[str]) -> dict[str, Path]:
    """One nkey seed file (0600) per role under <data dir>/credentials (0700), kept across
    restarts. The `user:password` files of earlier versions are removed: no client can use
    them and they still open the old embedded config's users."""
    directory = credentials_dir(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    paths: dict[str, Path] = {}
    for role in all_roles(sites):
        paths[role] = ensure_seed(directory / seed_file_name(role))
        (directory / f"{user_name(role)}.creds").unlink(missing_ok=True)
    return paths


def embedded_authorization(credentials: Mapping[str, Path]) -> str:
    """The block for the embedded server: the public keys of the seed files beside it."""
    return render_authorization(credentials, lambda role: f'"{public_key(credentials[role])}"')
