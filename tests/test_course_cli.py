"""`mip6lab course`: JupyterLab on the course's notebooks, or a clear error."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from mip6lab import cli

REPO = Path(__file__).resolve().parents[1]


def test_course_without_the_extra_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setattr(cli, "COURSE_MODULES", ("jupyterlab", "no_such_module_mip6lab"))
    assert cli.main(["course", "--no-browser"]) == 2
    err = capsys.readouterr().err
    assert "no_such_module_mip6lab missing" in err and "'.[course]'" in err


def test_course_with_a_missing_folder_is_a_usage_error(tmp_path, capsys):
    assert cli.main(["course", "--no-browser", "--dir", str(tmp_path / "nowhere")]) == 2
    assert "no notebooks folder" in capsys.readouterr().err


def test_course_finds_the_notebooks_of_this_checkout():
    assert Path(cli.course_notebooks()) == REPO / "notebooks"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_course_starts_jupyterlab_and_prints_its_url(tmp_path):
    port = _free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTER_DATA_DIR": str(tmp_path / "data"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    process = subprocess.Popen([sys.executable, "-m", "mip6lab", "course", "--no-browser",
                                "--port", str(port)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO,
                               start_new_session=True)
    try:
        url, lines = None, []
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            found = re.search(rf"http://127\.0\.0\.1:{port}/lab\S*token=(\w+)", line)
            if found:
                url, token = found.group(0), found.group(1)
        assert url is not None, "".join(lines)
        assert lines[0].startswith("mip6lab course: JupyterLab on ")
        assert "00-start.ipynb" in url
        api = f"http://127.0.0.1:{port}/api/contents/00-start.ipynb?token={token}&content=0"
        for _ in range(50):               # the URL may be printed a moment before it answers
            try:
                with urllib.request.urlopen(api, timeout=10) as answer:
                    status, body = answer.status, answer.read()
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise AssertionError(f"JupyterLab never answered at {api}")
        assert status == 200 and b'"00-start.ipynb"' in body
    finally:
        os.killpg(process.pid, signal.SIGTERM)     # the group it started, by its PID
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
