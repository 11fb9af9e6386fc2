"""NATS identities, one per role, and what each may publish and subscribe to.

The roles are DESIGN.md's: `admin`, `writer`, `projector`, `alerter`, `api`, `auditor`,
`safety` and `site:<site_id>` per site. Permissions are allow-lists: anything not named is
denied. Only `admin` may create, update, delete or purge a stream; the LEDGER's own
`deny_delete`/`deny_purge` hold even for admin (the server refuses to lift them).

Every identity has its own inbox prefix `_INBOX_<user>`: replies to a site's requests land on
a prefix only that site may subscribe to, so no other site (or service) can read them.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from events import SPONSOR_SITE
from events.subjects import ALERTS_STREAM, ALERTS_SUBJECTS, LEDGER_STREAM, LEDGER_SUBJECTS

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


def inbox_prefix(user: str) -> str:
    return f"_INBOX_{user}"


@dataclass(frozen=True)
class Permissions:
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    allow_responses: bool = False


def read_stream_subjects(stream: str) -> tuple[str, ...]:
    """Reading a stream through consumers (ephemeral or durable), direct gets and acks."""
    return (
        f"{JS_API}.STREAM.INFO.{stream}",
        f"{JS_API}.STREAM.MSG.GET.{stream}",
        f"{JS_API}.DIRECT.GET.{stream}",
        f"{JS_API}.DIRECT.GET.{stream}.>",
        f"{JS_API}.CONSUMER.CREATE.{stream}",
        f"{JS_API}.CONSUMER.CREATE.{stream}.>",
        f"{JS_API}.CONSUMER.DURABLE.CREATE.{stream}.*",
        f"{JS_API}.CONSUMER.INFO.{stream}.*",
        # Consumer names cannot be matched by prefix; a reader may remove a consumer it can
        # name. Losing a durable costs a re-read, never an event (the ledger is untouched).
        f"{JS_API}.CONSUMER.DELETE.{stream}.*",
        f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.*",
        f"$JS.ACK.{stream}.>",
        f"$JS.FC.{stream}.>",
    )


def _info(*streams: str) -> tuple[str, ...]:
    return (f"{JS_API}.STREAM.NAMES", *(f"{JS_API}.STREAM.INFO.{s}" for s in streams))


def permissions_for(role: str) -> Permissions:
    """What `role` may do on NATS (issue 6, "Security and tamper evidence")."""
    own_inbox = inbox_prefix(user_name(role)) + ".>"
    ledger = read_stream_subjects(LEDGER_STREAM)
    alerts = read_stream_subjects(ALERTS_STREAM)
    if role.startswith("site:"):
        site = role.split(":", 1)[1]
        # No JetStream API at all: a site talks to the writer and hears only its own replies.
        return Permissions(publish=(f"intake.*.{site}",), subscribe=(own_inbox,))
    match role:
        case "admin":
            return Permissions(publish=(">",), subscribe=(">",), allow_responses=True)
        case "writer":
            return Permissions(
                publish=(LEDGER_SUBJECTS, *ledger, *_info(ALERTS_STREAM)),
                subscribe=("intake.*.*", own_inbox),
                allow_responses=True,  # the verdict goes to the submitting site's inbox
            )
        case "projector":
            return Permissions(publish=(*ledger, *_info(ALERTS_STREAM)), subscribe=(own_inbox,))
        case "alerter":
            return Permissions(publish=(ALERTS_SUBJECTS, *ledger, *alerts), subscribe=(own_inbox,))
        case "api":
            # Read-only across sites; the live alert feed is a plain subscription.
            return Permissions(publish=(*ledger, *alerts), subscribe=(own_inbox, ALERTS_SUBJECTS))
        case "auditor":
            return Permissions(publish=(*ledger, *_info(ALERTS_STREAM)), subscribe=(own_inbox,))
        case "safety":
            return Permissions(
                publish=("intake.*._safety", *alerts, *_info(LEDGER_STREAM)),
                subscribe=(own_inbox, ALERTS_SUBJECTS),
            )
    raise ValueError(f"unknown role {role!r}")


def _quoted(values: Iterable[str]) -> str:
    return "[" + ", ".join(f'"{value}"' for value in values) + "]"


def render_user(role: str, password: str) -> str:
    """One `users` entry; `password` is config text: a quoted literal or `$ENV_VAR`."""
    perms = permissions_for(role)
    deny = "" if role == "admin" else f", deny: {_quoted(STREAM_ADMIN)}"
    lines = [
        f'    {{ user: "{user_name(role)}", password: {password}, permissions: {{',
        f"        publish: {{ allow: {_quoted(perms.publish)}{deny} }}",
        f"        subscribe: {{ allow: {_quoted(perms.subscribe)} }}",
    ]
    if perms.allow_responses:
        lines.append("        allow_responses: true")
    lines.append("    } }")
    return "\n".join(lines)


def render_authorization(roles: Iterable[str], password: Callable[[str], str]) -> str:
    """The nats.conf `authorization` block for `roles`."""
    users = "\n".join(render_user(role, password(role)) for role in roles)
    return f"authorization {{\n  users = [\n{users}\n  ]\n}}\n"


def env_password(role: str) -> str:
    """Static deployments read passwords from the environment (`$SITE_SITE01_PASSWORD`)."""
    return "$" + user_name(role).upper().replace("-", "_") + "_PASSWORD"


def credentials_dir(data_dir: Path) -> Path:
    return data_dir / "credentials"


def ensure_identities(data_dir: Path, sites: Iterable[str]) -> dict[str, Path]:
    """One `user:password` file (0600) per role under <data dir>/credentials, kept across restarts."""
    directory = credentials_dir(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    paths: dict[str, Path] = {}
    for role in all_roles(sites):
        path = directory / f"{user_name(role)}.creds"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(f"{user_name(role)}:{secrets.token_urlsafe(24)}\n")
        paths[role] = path
    return paths


def read_password(path: Path) -> str:
    return path.read_text().strip().partition(":")[2]


def embedded_authorization(credentials: Mapping[str, Path]) -> str:
    """The block for the embedded server. Its passwords are plain text: the config lives
    under the data dir (0600) beside the credential files themselves, so hashing them would
    protect nothing that the files do not already expose. Static deployments use env vars."""
    return render_authorization(credentials, lambda role: f'"{read_password(credentials[role])}"')
