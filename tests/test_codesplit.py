"""The 10/90 split: lines counted with tokenize, files grouped by the documented rules
(mip6lab.codesplit)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

import mip6lab
from mip6lab.cli import main
from mip6lab.codesplit import GROUPS, LineCount, code_split, count_lines, group_of

#: 7 code lines, 8 docstring lines, 2 comment lines, 4 blank lines (21 in all)
SAMPLE = '''\
"""A module docstring
over three lines.
"""
# a comment line
import os  # a comment after code is code

X = 1
#: an attribute documented by a comment


class A:
    """One line of class docstring."""

    def f(self):
        """Two lines
        of function docstring."""
        return os.sep
    y = 2
    """An attribute docstring."""
def g(): "one-line def: code"
"""a trailing string statement"""
'''


def test_count_lines_of_a_known_sample():
    counted = count_lines(SAMPLE)
    assert counted == LineCount(code=7, docstring=8, comment=2, blank=4)
    assert counted.total == len(SAMPLE.splitlines()) == 21


def test_strings_inside_code_count_every_line_they_span():
    source = textwrap.dedent('''\
        TEMPLATE = """
        line one

        line three
        """
        print(TEMPLATE,
              # a comment inside the call
              "x")
        ''')
    assert count_lines(source) == LineCount(code=7, docstring=0, comment=1, blank=0)


def test_blank_and_comment_only_sources():
    assert count_lines("") == LineCount(0, 0, 0, 0)
    assert count_lines("\n\n   \n") == LineCount(0, 0, 0, 3)
    assert count_lines("# one\n\n# two\n") == LineCount(0, 0, 2, 1)
    assert count_lines('"""doc"""\n') == LineCount(0, 1, 0, 0)
    assert count_lines('x = f"{1}"\n') == LineCount(1, 0, 0, 0)


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _code(n: int) -> str:
    """``n`` lines of code under a docstring, a comment and a blank line."""
    return '"""Docstring."""\n# comment\n\n' + "".join(f"v{i} = {i}\n" for i in range(n))


SYNTHETIC = {
    "__init__.py": _code(1),
    "cli.py": _code(10),
    "net/node.py": _code(20),
    "mobility/__init__.py": "",
    "mobility/mobile_node.py": _code(30),
    "mobility/home_agent.py": _code(25),
    "mobility/coupling.py": _code(40),
    "mobility/auth_option.py": _code(7),
    "wire/mip6.py": _code(15),
    "wire/ikev2.py": _code(50),
    "wire/auth.py": _code(8),
    "ikev2/sa.py": _code(200),
    "ipsec/esp.py": _code(100),
    "crypto/ike/prf.py": _code(35),
    "widgets/panels.py": _code(12),
}


def test_split_of_a_synthetic_package(tmp_path):
    _write(tmp_path, SYNTHETIC)
    (tmp_path / "mobility" / "__pycache__").mkdir()
    (tmp_path / "mobility" / "__pycache__" / "stale.py").write_text("x = 1\n" * 99)
    (tmp_path / "testing").mkdir()
    (tmp_path / "testing" / "init.sh").write_text("echo not python\n")
    split = code_split(tmp_path)
    assert split.totals == {"mobility": 30 + 25 + 15, "security-ipsec": 40 + 50 + 200 + 100 + 35,
                            "security-auth-option": 7 + 8, "infrastructure": 1 + 10 + 20 + 12}
    assert split.missing == ()
    assert split.ipsec_share == round(100 * 70 / (70 + 425), 1) == 14.1
    assert split.auth_option_share == round(100 * 70 / (70 + 15), 1) == 82.4
    assert {f.path for f in split.files} == set(SYNTHETIC)
    node = next(f for f in split.files if f.path == "net/node.py")
    assert node.lines == LineCount(code=20, docstring=1, comment=1, blank=1)
    text = split.text(files=True)
    assert "14.1 % mobility" in text and "82.4 % mobility" in text
    assert "    200  ikev2/sa.py" in text
    data = split.to_dict()
    assert data["groups"]["security-ipsec"]["code_lines"] == 425
    assert data["groups"]["security-ipsec"]["files"] == 5
    assert data["mobility_share_percent"] == {"ipsec": 14.1, "auth-option": 82.4}


def test_split_without_the_auth_option_files_says_so(tmp_path):
    _write(tmp_path, {k: v for k, v in SYNTHETIC.items()
                      if k not in ("mobility/auth_option.py", "wire/auth.py")})
    split = code_split(tmp_path)
    assert split.totals["security-auth-option"] == 0
    assert split.missing == ("mobility/auth_option.py", "wire/auth.py")
    assert split.auth_option_share is None
    assert split.ipsec_share == 14.1
    assert "not measured: mobility/auth_option.py, wire/auth.py absent" in split.text()


@pytest.mark.parametrize("path, group", [
    ("mobility/mobile_node.py", "mobility"), ("mobility/tunnel.py", "mobility"),
    ("wire/mip6.py", "mobility"), ("mobility/coupling.py", "security-ipsec"),
    ("ikev2/daemon.py", "security-ipsec"), ("ipsec/spd.py", "security-ipsec"),
    ("crypto/esp_suites.py", "security-ipsec"), ("wire/ikev2.py", "security-ipsec"),
    ("mobility/auth_option.py", "security-auth-option"),
    ("wire/auth.py", "security-auth-option"), ("wire/__init__.py", "infrastructure"),
    ("net/nat.py", "infrastructure"), ("scenarios/mobility.py", "infrastructure"),
    ("compare.py", "infrastructure"), ("widgets/ladder.py", "infrastructure"),
])
def test_group_rules(path, group):
    assert group_of(path) == group


def test_the_real_package_every_file_in_one_group():
    split = code_split()
    root = Path(mip6lab.__file__).resolve().parent
    assert Path(split.root) == root
    on_disk = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.py")
                     if "__pycache__" not in p.parts)
    paths = [f.path for f in split.files]
    assert paths == on_disk                            # each file once, none left out
    assert all(f.group in GROUPS for f in split.files)
    for group in ("mobility", "security-ipsec", "infrastructure"):
        assert split.totals[group] > 0
        assert split.totals[group] == sum(f.code for f in split.files if f.group == group)
    assert {"mobility/mobile_node.py", "mobility/home_agent.py",
            "wire/mip6.py"} <= {f.path for f in split.files if f.group == "mobility"}
    assert {"mobility/coupling.py", "ikev2/sa.py", "ipsec/esp.py",
            "wire/ikev2.py"} <= {f.path for f in split.files if f.group == "security-ipsec"}
    auth = {f.path for f in split.files if f.group == "security-auth-option"}
    assert auth | set(split.missing) == {"mobility/auth_option.py", "wire/auth.py"}
    assert 0 < split.ipsec_share < 100
    for f in split.files:                  # every line of a file is counted once
        source = (root / f.path).read_text()
        assert f.lines.total == len(source.splitlines())


def test_code_split_command(capsys):
    assert main(["code-split", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data["groups"]) == set(GROUPS)
    assert data["claimed_mobility_share_percent"] == 10
    assert data["mobility_share_percent"]["ipsec"] == code_split().ipsec_share
    assert main(["code-split", "--files"]) == 0
    out = capsys.readouterr().out
    assert "ipsec mode: mobility" in out and "mobility/coupling.py" in out
