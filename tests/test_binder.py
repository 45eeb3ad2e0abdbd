"""The Binder configuration works from its own files: a fresh virtual environment made
from ``binder/requirements.txt`` (without the web interface's two ``ui`` packages) and
``binder/postBuild`` executes every course notebook and every exercise's student version.

pip installs from the package index (its cache makes a second run quick); the notebooks
run with nbclient and ipykernel inside the new environment. In an untouched student version
the only errors allowed are its checks saying that the answer is not written yet.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest

from mip6lab.testing.prereq import missing

ROOT = Path(__file__).resolve().parents[1]

RUNNER = textwrap.dedent('''
    import json, sys, time
    from pathlib import Path
    import nbformat
    from nbclient import NotebookClient
    results = {}
    for path, allow_errors in json.loads(sys.argv[1]):
        nb = nbformat.read(path, as_version=4)
        start = time.time()
        NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=allow_errors,
                       resources={"metadata": {"path": str(Path(path).parent)}}).execute()
        errors = [(o["ename"], o["evalue"]) for c in nb.cells if c.cell_type == "code"
                  for o in c.get("outputs", []) if o.get("output_type") == "error"]
        results[path] = {"errors": errors, "seconds": round(time.time() - start, 1)}
    print(json.dumps(results))
''')


@pytest.fixture(scope="module")
def binder_env(tmp_path_factory):
    where = tmp_path_factory.mktemp("binder")
    env_dir = where / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    lines = (ROOT / "binder" / "requirements.txt").read_text().splitlines()
    pins = [line.split("#")[0].strip() for line in lines
            if line.split("#")[0].strip() and "# ui" not in line]
    install = subprocess.run([python, "-m", "pip", "install", "-q", *pins],
                             capture_output=True, text=True, timeout=600)
    if install.returncode != 0:
        missing(f"pip could not install binder/requirements.txt: {install.stderr[-500:]}")
    checkout = where / "checkout"      # postBuild runs in the repository's folder
    checkout.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, checkout / name)
    shutil.copytree(ROOT / "mip6lab", checkout / "mip6lab",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "binder", checkout / "binder")
    home = where / "home"
    home.mkdir()
    environment = {**os.environ, "PATH": f"{env_dir / 'bin'}{os.pathsep}{os.environ['PATH']}",
                   "HOME": str(home), "VIRTUAL_ENV": str(env_dir)}
    environment.pop("PYTHONPATH", None)
    built = subprocess.run(["bash", "binder/postBuild"], cwd=checkout, env=environment,
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-2000:]
    return python, environment, home


def test_postbuild_opens_the_course(binder_env):
    _python, _environment, home = binder_env
    config = (home / ".jupyter" / "jupyter_server_config.py").read_text()
    assert "/lab/tree/notebooks/00-start.ipynb" in config
    assert (ROOT / "notebooks" / "00-start.ipynb").is_file()


def test_every_notebook_runs_in_the_binder_environment(binder_env, tmp_path):
    python, environment, _home = binder_env
    probe = subprocess.run([python, "-c", "import mip6lab, sys; print(mip6lab.__file__)"],
                           env=environment, capture_output=True, text=True, cwd=tmp_path)
    assert probe.returncode == 0 and "site-packages" in probe.stdout, probe.stderr
    course = sorted((ROOT / "notebooks").glob("0*.ipynb"))
    students = sorted((ROOT / "exercises" / "release").glob("*/*.ipynb"))
    assert len(course) >= 7 and len(students) >= 6
    work = tmp_path / "work"          # each notebook runs in its own folder, as in Jupyter
    work.mkdir()
    plan = [(str(p), False) for p in course] + [(str(p), True) for p in students]
    run = subprocess.run([python, "-c", RUNNER, json.dumps(plan)],
                         env={**environment, "MIP6LAB_STUDENT_ID": "binder-test",
                              "MIP6LAB_RECORDED": "1"},
                         capture_output=True, text=True, timeout=900, cwd=work)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(run.stdout.strip().splitlines()[-1])
    for path in course:
        assert results[str(path)]["errors"] == [], (path.name, results[str(path)])
    for path in students:
        errors = results[str(path)]["errors"]
        # only the checks fail, each saying the answer is not written yet
        assert errors, path.name
        assert all(name == "AssertionError" and "not written yet" in value
                   for name, value in errors), (path.name, errors)
