"""`python -m services.cli.deploy_secrets [DIR] [--sites a,b]`: the secrets compose.yaml mounts.

Writes into DIR (default deploy/secrets, mode 0700), keeping whatever is already there:
- `ledger.env`: `<USER>_NKEY`, the public nkey of every NATS user of
  deploy/nats/authorization.conf (nats_auth.env_nkey), and POSTGRES_PASSWORD; compose reads
  it with `--env-file`;
- `<user>.nk`: each role's nkey seed, the standard file `nats --nkey` and nats-py read;
- `writer_ed25519` (+ `.pub`): the writer's signing key, and `runtime.json` holding only the
  API's bearer tokens (the API reads them from its data dir's runtime.json).
A seed's public key in ledger.env is what makes a NATS user and its seed file agree.

The directory is 0700; the files a container reads are 0644 because compose bind-mounts them
with the host's owner, and the services run as their own unprivileged user.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
from pathlib import Path

from services.runtime.system import api_tokens
from services.security.nats_auth import (
    all_roles,
    ensure_seed,
    env_nkey,
    public_key,
    seed_file_name,
    user_name,
)
from services.security.seals import ensure_writer_key, key_path, public_key_path

DEFAULT_SITES = ("site01", "site02")


def _read_env(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {name.strip(): value.strip() for name, value in pairs}


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    path.chmod(mode)


def write_secrets(directory: Path, sites: tuple[str, ...] = DEFAULT_SITES) -> dict[str, str]:
    """Create (or complete) the secrets; returns the env file's variables."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    env_path = directory / "ledger.env"
    # Only what is still used: the old `<USER>_PASSWORD` variables are dropped.
    env = {k: v for k, v in _read_env(env_path).items() if k == "POSTGRES_PASSWORD"}
    env.setdefault("POSTGRES_PASSWORD", secrets.token_urlsafe(24))
    for role in all_roles(sites):
        seed = ensure_seed(directory / seed_file_name(role))
        seed.chmod(0o644)
        env[env_nkey(role).lstrip("$")] = public_key(seed)
        (directory / f"{user_name(role)}.creds").unlink(missing_ok=True)  # the old format
    _write(env_path, "".join(f"{name}={value}\n" for name, value in sorted(env.items())), 0o600)
    # The key helpers keep their <dir>/keys/ layout; compose mounts the files directly.
    ensure_writer_key(directory)
    shutil.copyfile(key_path(directory), directory / "writer_ed25519")
    (directory / "writer_ed25519").chmod(0o644)
    shutil.copyfile(public_key_path(directory), directory / "writer_ed25519.pub")
    tokens = api_tokens(directory, sites)
    _write(directory / "runtime.json", json.dumps({"api_tokens": tokens}, indent=2) + "\n")
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("directory", nargs="?", default="deploy/secrets", type=Path)
    parser.add_argument("--sites", default=",".join(DEFAULT_SITES), help="comma-separated site ids")
    args = parser.parse_args()
    sites = tuple(s.strip() for s in args.sites.split(",") if s.strip())
    write_secrets(args.directory, sites)
    print(
        f"secrets written to {args.directory}; start with: "
        f"docker compose --env-file {args.directory}/ledger.env up -d"
    )


if __name__ == "__main__":
    main()
