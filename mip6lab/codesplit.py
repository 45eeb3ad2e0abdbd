"""The 10/90 split, measured on this code base: lines of mobility code against lines of
security integration, counted from the installed package itself.

The claim under test comes from the IETF 75 MEXT talk "Issues with the use of
IPsec/IKEv2 with MIP6" (slides 9-10): implementing (DS)MIP6 is 10 % of the effort, its
integration with IPsec/IKEv2 90 %; and from draft-patil-mext-mip6issueswithipsec-01 §7,
which concludes that MIP6 needs "an alternate security framework" that is "self
contained" in the mobility application. Lines of code are a proxy for effort, not the
effort itself -- but a proxy anyone can recompute: :func:`code_split` reads the ``.py``
files under the folder of ``mip6lab.__file__`` every time it is called, so the numbers
follow the code as it changes.

What is a line of code (:func:`count_lines`, with :mod:`tokenize`): a physical line that
holds at least one token of a statement. Not counted: blank lines, comment lines, and
docstrings -- here every statement made of string literals alone (the module, class and
function docstrings, and the attribute docstrings Sphinx reads after an assignment),
since none of them does anything when run. A string literal inside code (an argument,
a constant) counts every line it spans. ``def f(): "doc"`` on one line is one line of
code. Tests are not in the package and so never counted.

Which file goes where (:func:`group_of`, on the path inside the package):

``mobility``
    ``mobility/`` -- MN, HA, binding cache, binding update list, tunnel, constants --
    minus ``mobility/coupling.py`` and ``mobility/auth_option.py``, plus
    ``wire/mip6.py`` (the Mobility Header options scapy lacks, RFC 5555 §3). This is
    (DS)MIP6 as RFC 6275 and RFC 5555 specify it, whatever secures it.
``security-ipsec``
    What the standard security mode needs besides the mobility protocol:
    ``mobility/coupling.py`` (the RFC 4877 seam: SPD entries, K bit, HoA assignment over
    IKEv2), ``ikev2/`` (the IKEv2 daemon, its SA state machine, CP, traffic selectors,
    pools, and its UDP driver and Wireshark key export), ``ipsec/`` (SPD, SAD, PAD, ESP,
    the key engine), ``crypto/`` (the IKE and ESP transforms over ``cryptography``) and
    ``wire/ikev2.py`` (IKEv2 formats scapy lacks).
``security-auth-option``
    What RFC 4285's mode needs besides the mobility protocol:
    ``mobility/auth_option.py`` (the mobility SA store, authenticator, replay check) and
    ``wire/auth.py`` (the RFC 4283 / RFC 4285 options). Absent files count 0 and the
    report says they are absent. The mode's what-if of a manually keyed ESP payload
    reuses ``ipsec/``, which is not added here: RFC 4285 deployments run without it,
    and it protects the payload, not the signalling.
``infrastructure``
    Everything else -- ``net/`` (the simulator and its drivers), ``widgets/``,
    ``scenarios/``, the trace, state and timeline, the CLI, ``testing/``, this module
    and :mod:`mip6lab.compare`. It serves both modes alike and is reported with its own
    total, outside the split.

The split is ``mobility / (mobility + security)``, once per security mode: the talk
predicts about 10 % for the IPsec mode. The per-file rows are kept so that a reader who
draws a line elsewhere (``ikev2/udp.py`` is tooling for interop, not needed by a MIP6
implementation on a kernel with strongSwan) can redo the sum.
"""

from __future__ import annotations

import io
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

#: the groups, in the order they are shown, with what each is
GROUPS: dict[str, str] = {
    "mobility": "mobility protocol ((DS)MIP6: mobility/ minus the security, wire/mip6.py)",
    "security-ipsec": "security integration, ipsec mode (coupling, IKEv2, IPsec, crypto, "
                      "wire/ikev2.py)",
    "security-auth-option": "security integration, auth-option mode (RFC 4285: "
                            "mobility/auth_option.py, wire/auth.py)",
    "infrastructure": "infrastructure, not counted in the split (simulator, widgets, "
                      "scenarios, trace, CLI, testing ...)",
}

_AUTH_OPTION_FILES = ("mobility/auth_option.py", "wire/auth.py")
_IPSEC_FILES = ("mobility/coupling.py", "wire/ikev2.py")
_IPSEC_FOLDERS = ("ikev2/", "ipsec/", "crypto/")

#: tokens that are not code: layout and comments
_NOT_CODE = frozenset({tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                       tokenize.DEDENT, tokenize.ENCODING, tokenize.ENDMARKER})
#: tokens of which a statement made alone is a docstring (f-strings tokenize in parts
#: from Python 3.12 on)
_STRING_PARTS = frozenset({tokenize.STRING} | {getattr(tokenize, name) for name in
                          ("FSTRING_START", "FSTRING_MIDDLE", "FSTRING_END")
                          if hasattr(tokenize, name)})


def group_of(path: str) -> str:
    """The group of a file, from its path inside the package (``mobility/tunnel.py``)."""
    path = path.replace("\\", "/")
    if path in _AUTH_OPTION_FILES:
        return "security-auth-option"
    if path in _IPSEC_FILES or path.startswith(_IPSEC_FOLDERS):
        return "security-ipsec"
    if path.startswith("mobility/") or path == "wire/mip6.py":
        return "mobility"
    return "infrastructure"


@dataclass(frozen=True)
class LineCount:
    """The physical lines of one source, by what they hold. Every line is in exactly one
    of code, docstring, comment, blank; a line with code and a comment is code."""

    code: int
    docstring: int
    comment: int
    blank: int

    @property
    def total(self) -> int:
        return self.code + self.docstring + self.comment + self.blank


def _spanned(tokens: list[tokenize.TokenInfo]) -> set[int]:
    rows: set[int] = set()
    for token in tokens:
        rows.update(range(token.start[0], token.end[0] + 1))
    return rows


def count_lines(source: str) -> LineCount:
    """Count the lines of one Python source (see the module's rules)."""
    lines = source.splitlines()
    code: set[int] = set()
    docstring: set[int] = set()
    comment: set[int] = set()
    statement: list[tokenize.TokenInfo] = []

    def end_statement() -> None:
        if statement:
            if all(t.type in _STRING_PARTS for t in statement):
                docstring.update(_spanned(statement))
            else:
                code.update(_spanned(statement))
            statement.clear()

    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comment.add(token.start[0])
        elif token.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
            end_statement()
        elif token.type not in _NOT_CODE:
            statement.append(token)
    end_statement()
    docstring -= code
    comment -= code | docstring
    # what is left is blank (or, rarely, a lone backslash continuation: layout too)
    blank = len(lines) - len(code | docstring | comment)
    return LineCount(len(code), len(docstring), len(comment), blank)


@dataclass(frozen=True)
class FileLines:
    """One file of the package: its path inside it, its group and its lines."""

    path: str
    group: str
    lines: LineCount

    @property
    def code(self) -> int:
        return self.lines.code


@dataclass(frozen=True)
class CodeSplit:
    """Lines of code per group, the files behind them, and the split per mode."""

    root: str
    files: tuple[FileLines, ...]
    totals: dict[str, int] = field(default_factory=dict)
    #: the auth-option files that were not found (the mode's code absent, counted 0)
    missing: tuple[str, ...] = ()

    def share(self, mode: str = "ipsec") -> float | None:
        """The mobility protocol's share, in percent, of mobility + the security of
        ``mode`` ("ipsec" or "auth-option"); None when there is nothing to divide, or
        when the auth-option mode's files are absent."""
        security = self.totals[f"security-{mode}"]
        if mode == "auth-option" and not security and self.missing:
            return None                   # the mode's code is not there: nothing measured
        whole = self.totals["mobility"] + security
        return round(100 * self.totals["mobility"] / whole, 1) if whole else None

    @property
    def ipsec_share(self) -> float | None:
        return self.share("ipsec")

    @property
    def auth_option_share(self) -> float | None:
        return self.share("auth-option")

    def to_dict(self) -> dict:
        return {
            "root": self.root,
            "groups": {name: {"code_lines": self.totals[name], "what": what,
                              "files": sum(1 for f in self.files if f.group == name)}
                       for name, what in GROUPS.items()},
            "mobility_share_percent": {"ipsec": self.ipsec_share,
                                       "auth-option": self.auth_option_share},
            "claimed_mobility_share_percent": 10,
            "missing": list(self.missing),
            "files": [{"path": f.path, "group": f.group, "code": f.lines.code,
                       "docstring": f.lines.docstring, "comment": f.lines.comment,
                       "blank": f.lines.blank} for f in self.files],
        }

    def text(self, files: bool = False) -> str:
        """The split as text: the groups, the two shares, and (``files``) every file."""
        out = [f"Lines of code in {self.root} (no comments, docstrings or blank lines):"]
        for name, what in GROUPS.items():
            count = sum(1 for f in self.files if f.group == name)
            out.append(f"  {self.totals[name]:>6}  {name:<21} {count:>3} files  {what}")
        m = self.totals["mobility"]
        for mode in ("ipsec", "auth-option"):
            s = self.totals[f"security-{mode}"]
            share = self.share(mode)
            if share is None and mode == "auth-option" and self.missing:
                out.append(f"  auth-option mode: not measured: {', '.join(self.missing)} "
                           "absent (counted 0)")
                continue
            shown = f"{share:g} %" if share is not None else "-"
            out.append(f"  {mode} mode: mobility {m} / (mobility {m} + security {s}) = "
                       f"{shown} mobility, "
                       f"{'-' if share is None else format(100 - share, '.1f') + ' %'} "
                       "security")
        if self.missing and self.totals["security-auth-option"]:
            out.append(f"  auth-option mode: {', '.join(self.missing)} absent, counted 0")
        out.append("  the talk's claim (slides 9-10): 10 % mobility, 90 % security "
                   "integration")
        if files:
            out.append("")
            for name in GROUPS:
                out.append(f"  {name}:")
                out.extend(f"    {f.lines.code:>6}  {f.path}" for f in self.files
                           if f.group == name)
        return "\n".join(out)


def package_root() -> Path:
    """The folder of the installed ``mip6lab`` package."""
    import mip6lab

    return Path(mip6lab.__file__).resolve().parent


def code_split(root: str | Path | None = None) -> CodeSplit:
    """Count the ``.py`` files under ``root`` (default: the installed package) and split
    them into :data:`GROUPS`."""
    base = Path(root) if root is not None else package_root()
    files = []
    for path in sorted(base.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        relative = path.relative_to(base).as_posix()
        with tokenize.open(path) as f:        # honours a coding declaration
            counted = count_lines(f.read())
        files.append(FileLines(relative, group_of(relative), counted))
    totals = {name: sum(f.lines.code for f in files if f.group == name) for name in GROUPS}
    present = {f.path for f in files}
    missing = tuple(p for p in _AUTH_OPTION_FILES if p not in present)
    return CodeSplit(str(base), tuple(files), totals, missing)


__all__ = ["GROUPS", "CodeSplit", "FileLines", "LineCount", "code_split", "count_lines",
           "group_of", "package_root"]
