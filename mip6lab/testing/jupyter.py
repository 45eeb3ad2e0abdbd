"""A JupyterLab server on localhost for tests (the real-browser test of the dashboard).

::

    from mip6lab.testing.jupyter import JupyterLab, chromium_path

    with JupyterLab() as lab:          # a temporary copy of the repository's notebooks/
        url = lab.notebook_url("00-start.ipynb")
        ...                            # open url in a browser (Playwright + chromium_path())

The server listens on 127.0.0.1 on a free port with a random token, opens no browser, and
serves a *temporary copy* of the notebooks folder (or of a given folder), so running the
cells and JupyterLab's autosave never touch the checkout. Its user settings, workspaces and
runtime files and notebook-signing key live in the same temporary directory: the user's own JupyterLab state (open
tabs, settings) cannot leak into a test, and news / update checks are off, so nothing is
fetched from the network. The kernels it starts see this checkout first on ``PYTHONPATH``.

Stopping (``stop()``, or leaving the ``with`` block, also on an exception) sends SIGTERM to
the process group the server was started in (its own session), which makes the server shut
its kernels down; any process it started that is still alive after the grace period, and
the group itself, are then killed by PID. Only processes this object started are signalled.

Nothing here imports pytest: a missing prerequisite is for the test to report (see
:mod:`mip6lab.testing.prereq`).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

__all__ = ["JupyterLab", "JupyterLabError", "chromium_path", "free_port",
           "default_notebooks_dir", "descendants", "is_alive", "kill_survivors"]

# Debian's chromium package installs its launcher here (scripts/install-system-deps).
DEBIAN_CHROMIUM = "/usr/bin/chromium"

REPO_ROOT = Path(__file__).resolve().parents[2]


class JupyterLabError(RuntimeError):
    """The server did not start (the message carries the end of its log)."""


def chromium_path() -> str | None:
    """Debian's chromium (``/usr/bin/chromium``, else ``chromium`` on PATH), or None.

    The browser test hands this to Playwright as ``executable_path``: Playwright's own
    browser downloads (``playwright install``) are never used.
    """
    if os.access(DEBIAN_CHROMIUM, os.X_OK):
        return DEBIAN_CHROMIUM
    return shutil.which("chromium")


def default_notebooks_dir() -> Path:
    """The repository's ``notebooks/`` folder (next to the ``mip6lab`` package)."""
    return REPO_ROOT / "notebooks"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the server is told not to try others)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _stat_fields(pid: int) -> list[bytes] | None:
    """The fields of /proc/<pid>/stat after ``pid (comm)``: state, ppid, ...; or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    return stat[stat.rfind(b")") + 2:].split()  # comm may contain spaces and parentheses


def _identity(pid: int) -> tuple[int, bytes] | None:
    """``(pid, start time)``: tells a process from a later one that reuses its PID."""
    fields = _stat_fields(pid)
    return (pid, fields[19]) if fields and len(fields) > 19 else None


def descendants(pid: int) -> list[tuple[int, bytes]]:
    """The identities of ``pid``'s descendants (Linux /proc; empty elsewhere)."""
    try:
        entries = [int(e) for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return []
    parent = {}
    for entry in entries:
        fields = _stat_fields(entry)
        if fields and len(fields) > 1:
            parent[entry] = int(fields[1])
    result, todo = [], [pid]
    while todo:
        current = todo.pop()
        for child, ppid in parent.items():
            if ppid == current:
                todo.append(child)
                identity = _identity(child)
                if identity is not None:
                    result.append(identity)
    return result


def is_alive(identity: tuple[int, bytes]) -> bool:
    """Whether that very process (same PID, same start time) still runs (not a zombie)."""
    fields = _stat_fields(identity[0])
    return bool(fields) and _identity(identity[0]) == identity and fields[0] != b"Z"


def kill_survivors(identities: list[tuple[int, bytes]], grace: float = 3.0) -> list[int]:
    """Wait up to ``grace`` seconds for these processes to end, then SIGKILL the ones
    still alive, by PID (a PID now used by another process is left alone). Returns the
    PIDs killed."""
    deadline = time.monotonic() + grace
    while any(is_alive(i) for i in identities) and time.monotonic() < deadline:
        time.sleep(0.05)
    killed = []
    for identity in identities:
        if is_alive(identity):
            try:
                os.kill(identity[0], signal.SIGKILL)
                killed.append(identity[0])
            except ProcessLookupError:
                pass
    return killed


class JupyterLab:
    """A JupyterLab server for one test session; a context manager.

    ``notebooks``: the folder to serve a copy of (default: the repository's notebooks/).
    ``copy``: serve a temporary copy (default) or the folder itself.
    ``disable_check_xsrf``: pass ``--ServerApp.disable_check_xsrf=True``; not needed for
    the browser (it gets the XSRF cookie with the token URL) nor for :meth:`api` (token in
    the Authorization header), so off by default.
    ``startup_timeout``: seconds to wait for ``/api/status`` to answer.
    """

    def __init__(self, notebooks: str | os.PathLike[str] | None = None, *, copy: bool = True,
                 disable_check_xsrf: bool = False, startup_timeout: float = 60.0,
                 extra_args: list[str] | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.source = Path(notebooks) if notebooks is not None else default_notebooks_dir()
        self.copy = copy
        self.disable_check_xsrf = disable_check_xsrf
        self.startup_timeout = startup_timeout
        self.extra_args = list(extra_args or [])
        self.extra_env = dict(env or {})
        self.host = "127.0.0.1"
        self.port: int | None = None
        self.token = secrets.token_hex(24)
        self.workdir: Path | None = None
        self.root_dir: Path | None = None
        self.log_path: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._log_handle = None
        self.last_log = ""

    # -- addresses -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise JupyterLabError("the server is not started")
        return f"http://{self.host}:{self.port}"

    def notebook_url(self, name: str) -> str:
        """The JupyterLab URL that opens ``name`` (relative to the root dir), with token."""
        return f"{self.base_url}/lab/tree/{quote(name)}?token={self.token}"

    def api(self, path: str, method: str = "GET", timeout: float = 5.0):
        """Call the REST API (``path`` like ``/api/kernels``); the decoded JSON or None."""
        request = urllib.request.Request(
            f"{self.base_url}{path}", method=method,
            headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> JupyterLab:
        if self.process is not None:
            raise JupyterLabError("already started")
        if not self.source.is_dir():
            raise JupyterLabError(f"no such notebooks folder: {self.source}")
        self.workdir = Path(tempfile.mkdtemp(prefix="mip6lab-jupyter-"))
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        assert self.workdir is not None
        if self.copy:
            self.root_dir = self.workdir / "notebooks"
            shutil.copytree(self.source, self.root_dir,
                            ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        else:
            self.root_dir = self.source.resolve()
        settings = self.workdir / "lab-settings"
        notification = settings / "@jupyterlab" / "apputils-extension"
        notification.mkdir(parents=True)
        # no "receive news?" toast over the page, no news or update fetch
        (notification / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        # every cell in the DOM (no virtual scrolling), so a test finds every output
        tracker = settings / "@jupyterlab" / "notebook-extension"
        tracker.mkdir(parents=True)
        (tracker / "tracker.jupyterlab-settings").write_text(
            json.dumps({"windowingMode": "none"}))
        for name in ("workspaces", "runtime", "config", "notary"):
            (self.workdir / name).mkdir()

        self.port = free_port(self.host)
        args = [
            sys.executable, "-m", "jupyterlab",
            "--no-browser",
            f"--ServerApp.ip={self.host}",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root_dir}",
            "--ServerApp.allow_root=True",
            "--ServerApp.open_browser=False",
            f"--LabApp.user_settings_dir={settings}",
            f"--LabApp.workspaces_dir={self.workdir / 'workspaces'}",
            # the notebook-signing key and trust database: not in the user's data dir
            f"--NotebookNotary.data_dir={self.workdir / 'notary'}",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
        if self.disable_check_xsrf:
            args.append("--ServerApp.disable_check_xsrf=True")
        args += self.extra_args

        env = dict(os.environ)
        env["JUPYTER_CONFIG_DIR"] = str(self.workdir / "config")  # no user config
        env["JUPYTER_RUNTIME_DIR"] = str(self.workdir / "runtime")
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        env.pop("JUPYTER_TOKEN", None)
        env.update(self.extra_env)

        self.log_path = self.workdir / "jupyterlab.log"
        self._log_handle = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            args, cwd=self.root_dir, env=env, stdin=subprocess.DEVNULL,
            stdout=self._log_handle, stderr=subprocess.STDOUT,
            start_new_session=True)  # its own process group: stop() signals only that
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        url = f"{self.base_url}/api/status?token={self.token}"
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise JupyterLabError(
                    f"jupyter lab exited with status {self.process.returncode} before "
                    f"answering:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        json.loads(response.read())
                        return
            except (OSError, ValueError) as exc:  # URLError, refused, reset, bad JSON
                last_error = exc
            time.sleep(0.1)
        raise JupyterLabError(
            f"jupyter lab did not answer {self.base_url}/api/status within "
            f"{self.startup_timeout:.0f} s (last error: {last_error}):\n{self.log_tail()}")

    def log_text(self) -> str:
        """The server's output so far (stdout and stderr)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def stop(self, grace: float = 10.0) -> None:
        """Stop the server and every process it started; remove the temporary directory.

        Idempotent. The server's log is kept in :attr:`last_log` (the file goes with the
        directory).
        """
        process, self.process = self.process, None
        if process is not None:
            self._terminate(process, grace)
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
        self.last_log = self.log_text()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
            self.log_path = None

    @staticmethod
    def _terminate(process: subprocess.Popen[bytes], grace: float) -> None:
        pgid = process.pid  # start_new_session: the server leads its own group
        # The kernels run in sessions of their own (jupyter_client): note them now, so
        # one that outlives the server's shutdown can still be killed by its PID.
        started = descendants(process.pid)
        if process.poll() is None:
            try:
                os.killpg(pgid, signal.SIGTERM)  # the server shuts its kernels down
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        kill_survivors(started)
        try:
            os.killpg(pgid, signal.SIGKILL)  # whatever is left of the group
        except (ProcessLookupError, PermissionError):
            pass
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL was sent
            pass

    def __enter__(self) -> JupyterLab:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
