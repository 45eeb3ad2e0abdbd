"""Run a shell script inside Debian's stock kernel under QEMU — kernel ESP for interop.

The build machines' own kernel has XFRM but no ESP (see shared/interop-notes.md, "The
kernel has no ESP"), so tests that need the Linux kernel as an IPsec peer boot Debian's
``linux-image-6.1.0-N-amd64`` under ``qemu-system-x86_64`` in TCG mode::

    from mip6lab.testing.qemu_kernel import KernelVM

    vm = KernelVM()                       # prepare_kernel(): download + unpack, cached
    result = vm.run("ip xfrm state add ... && ping -c1 ...", timeout=90)
    assert result.returncode == 0, result.output

How the guest is put together:

* the kernel package and ``busybox-static`` are fetched with ``apt-get download`` and
  unpacked with ``dpkg-deb -x`` into a cache directory (``$MIP6LAB_CACHE`` or
  ``~/.cache/mip6lab/qemu``); nothing is installed; ``depmod -b`` writes modules.dep
  there once;
* a small initramfs (busybox + virtio-pci + 9p modules, stage 1:
  ``qemu_stage1_init.sh``) mounts **this machine's ``/`` read-only over 9p** as the
  guest's root, fresh tmpfs on ``/tmp`` and ``/run``, and a per-run **job directory**
  (writable 9p share) on ``/run/mip6lab``;
* stage 2 (``qemu_guest_init.sh``) runs as PID 1 under the host's own ``/bin/bash``:
  proc, sys, devpts, a ``modprobe`` wrapper that loads from the unpacked package (also
  registered as ``/proc/sys/kernel/modprobe``, so ``ip xfrm`` autoloads esp4/esp6/gcm as
  on a normal system), then the script, whose output and exit status land in the job
  directory; then it powers the VM off;
* there is no network card (``-nic none``) unless asked for: nothing leaves the VM.
  Network namespaces, veth pairs, ``ip xfrm``, ping and the host's Python all work
  inside it.

Timing on the build machines (2 cores, TCG): QEMU start to the script's first line
≈ 5-7 s wall (guest uptime ≈ 3-5 s), power-off included ≈ 6 s for ``true``. The first
``ip xfrm state add`` of a boot costs 3-8 s more (xfrm_user, esp, gcm, ghash, drbg,
jitterentropy load and self-test under emulation); later ones ≈ 0.1 s. Python in the
guest is 15-30x slower than on the host: ``python -c pass`` ≈ 1-3 s, ``import
mip6lab.ipsec`` ≈ 5 s, ``import scapy.all`` ≈ 15 s — so start as few guest Python
processes as possible, or keep our side on the host:

* ``KernelVM(nics=N)`` gives the guest ``eth0..`` virtio-net cards whose other end is a
  unix datagram socket in *this* process (:meth:`VMRun.nic`, one Ethernet frame per
  datagram; QEMU's ``-netdev dgram``): host-side Python (ours, at native speed) talks
  to the guest kernel, and still nothing leaves the machine;
* :meth:`KernelVM.start` returns a :class:`VMRun` at once, so the host can work while the
  guest runs; :meth:`VMRun.wait_for_file` and :meth:`VMRun.touch` are the rendezvous
  through the job directory (``$MIP6LAB_JOB``).

The host side always kills the QEMU process it started (by its PID) when the run ends,
times out or fails, and removes the temporary directory.

Everything the host can see at its own path the guest can see at the same path, except
what lies under ``/tmp`` and ``/run`` (fresh tmpfs in the guest), ``/proc``, ``/sys``
and ``/dev``. The repository, the Python installation and the cache directory are shared
again at their own paths when they lie there; pass ``shares=`` for other directories,
or ``files=`` to :meth:`KernelVM.run` for small inputs.

Running our own Python program in the guest: ``$MIP6LAB_PYTHON`` is the host's
``sys.executable`` and ``PYTHONPATH`` holds the repository root, so
``"$MIP6LAB_PYTHON" -m mip6lab ...`` or ``"$MIP6LAB_PYTHON" "$MIP6LAB_IN/prog.py"``
works inside the guest (in a namespace too: ``ip netns exec a "$MIP6LAB_PYTHON" ...``).
Files the script writes to ``$MIP6LAB_OUT`` come back in :attr:`VMResult.files`.

Needs (Debian packages): qemu-system-x86 (the emulator), kmod (depmod on the host,
modprobe in the guest), apt and dpkg (always there), iproute2 for the guest's ``ip``.
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import io
import lzma
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "KernelImage",
    "KernelVM",
    "KernelVMError",
    "KernelVMTimeout",
    "VMResult",
    "VMRun",
    "XfrmStateStats",
    "build_initramfs",
    "default_cache_dir",
    "nic_mac",
    "parse_xfrm_states",
    "prepare_kernel",
    "python_env",
]

_HERE = Path(__file__).resolve().parent
STAGE1 = _HERE / "qemu_stage1_init.sh"
STAGE2 = _HERE / "qemu_guest_init.sh"
REPO_ROOT = _HERE.parent.parent  # the directory that holds the mip6lab package

# Newest stock 6.1 kernel: signed image preferred (it boots the same under QEMU).
_KERNEL_RE = re.compile(r"linux-image-(6\.1\.0-(\d+)-amd64)(-unsigned)?")
BUSYBOX_PACKAGE = "busybox-static"
# Modules the initramfs loads to mount the host's root (dependencies are added).
INITRAMFS_MODULES = ("virtio_pci", "9pnet_virtio", "9p")
# Host paths the guest hides (fresh mounts there); what lies below is shared again.
GUEST_MASKED = ("/tmp", "/run", "/proc", "/sys", "/dev")
GUEST_JOB = "/run/mip6lab"

DEFAULT_TIMEOUT = 120.0


class KernelVMError(RuntimeError):
    """The VM could not be prepared or booted, or the guest did not report back.

    ``console`` holds the guest's serial console (kernel messages, stage 1/2 errors).
    """

    def __init__(self, message: str, console: str = "", output: str = "") -> None:
        self.console = console
        self.output = output
        tail = "\n".join(console.rstrip().splitlines()[-25:])
        super().__init__(message + (f"\n--- guest console (tail) ---\n{tail}" if tail else ""))


class KernelVMTimeout(KernelVMError):
    """The run hit its time limit; QEMU was killed. ``output`` is what the script had
    written so far."""


@dataclass(frozen=True)
class KernelImage:
    """An unpacked Debian kernel package plus busybox, ready to boot."""

    package: str  # e.g. linux-image-6.1.0-56-amd64
    version: str  # uname -r, e.g. 6.1.0-56-amd64
    root: Path  # dpkg-deb -x target: boot/, lib/modules/<version>/
    vmlinuz: Path
    modules_dir: Path  # root/lib/modules/<version>
    busybox: Path  # static busybox binary
    cache_dir: Path

    @property
    def modules_root(self) -> Path:
        """The ``modprobe --dirname`` / ``depmod -b`` root of the modules."""
        return self.root


@dataclass
class VMResult:
    """What one :meth:`KernelVM.run` brought back."""

    returncode: int  # the script's exit status
    output: str  # its stdout and stderr, merged
    console: str = ""  # the serial console (kernel log, stage messages)
    boot_seconds: float | None = None  # guest uptime when the script started
    elapsed: float = 0.0  # host wall-clock seconds, QEMU start to exit
    pid: int = 0  # the QEMU process (ended and reaped when run() returns)
    files: dict[str, bytes] = field(default_factory=dict)  # from $MIP6LAB_OUT

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def check(self) -> VMResult:
        """Raise :class:`KernelVMError` unless the script exited with 0; return self."""
        if self.returncode != 0:
            raise KernelVMError(
                f"guest script exited with {self.returncode}\n--- output ---\n{self.output}",
                self.console, self.output)
        return self


# -- preparing the kernel ------------------------------------------------------------------


def default_cache_dir() -> Path:
    """``$MIP6LAB_CACHE`` if set, else ``~/.cache/mip6lab/qemu``."""
    env = os.environ.get("MIP6LAB_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "mip6lab" / "qemu"


def _run(cmd: list[str], cwd: Path | None = None, timeout: float = 600) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise KernelVMError(f"{shlex.join(cmd)} failed ({proc.returncode}): "
                            f"{proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def _need(tool: str, package: str) -> str:
    path = shutil.which(tool) or next(
        (p for p in (f"/usr/sbin/{tool}", f"/sbin/{tool}") if os.access(p, os.X_OK)), None)
    if path is None:
        raise KernelVMError(f"{tool!r} not found; apt-get install {package}")
    return path


def _kernel_candidates() -> list[str]:
    """Stock 6.1 amd64 kernel image packages apt knows, best first."""
    out = _run(["apt-cache", "search", "--names-only", r"^linux-image-6\.1\.0-[0-9]+-amd64"])
    found: list[tuple[int, int, str]] = []
    for line in out.splitlines():
        name = line.split(" - ", 1)[0].strip()
        m = _KERNEL_RE.fullmatch(name)
        if m:  # not -cloud, -rt, -dbg (those do not fullmatch)
            found.append((int(m.group(2)), 0 if m.group(3) else 1, name))
    return [name for *_, name in sorted(found, reverse=True)]


def _apt_update() -> None:
    if os.geteuid() != 0:
        raise KernelVMError("apt-cache knows no linux-image-6.1.0-*-amd64 package and "
                            "apt-get update needs root; run it once as root")
    _run(["apt-get", "update", "-q"], timeout=900)


class _Lock:
    """An exclusive flock on ``<cache>/.lock`` (parallel test processes share a cache)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)

    def __enter__(self) -> _Lock:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


def _unpacked(cache: Path, package: str) -> Path:
    return cache / package


def _fetch_and_unpack(cache: Path, package: str) -> Path:
    """``apt-get download`` + ``dpkg-deb -x`` into ``cache/package`` (atomic, idempotent)."""
    target = _unpacked(cache, package)
    if (target / ".complete").exists():
        return target
    work = Path(tempfile.mkdtemp(prefix=f".{package}-", dir=cache))
    try:
        debs = work / "debs"
        debs.mkdir()
        os.chmod(work, 0o755)
        os.chmod(debs, 0o777)  # let apt's _apt sandbox user write there (no warning)
        _run(["apt-get", "download", "-q", package], cwd=debs, timeout=900)
        deb = next(iter(sorted(debs.glob(f"{package}_*.deb"))), None)
        if deb is None:
            raise KernelVMError(f"apt-get download {package} left no .deb in {debs}")
        tree = work / "tree"
        _run([_need("dpkg-deb", "dpkg"), "-x", str(deb), str(tree)])
        (tree / ".complete").write_text(deb.name + "\n")
        if target.exists():  # an incomplete earlier attempt
            shutil.rmtree(target)
        tree.rename(target)
        return target
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _kernel_version(root: Path) -> str:
    versions = sorted(p.name for p in (root / "lib" / "modules").iterdir() if p.is_dir())
    if len(versions) != 1:
        raise KernelVMError(f"expected one module tree under {root}/lib/modules: {versions}")
    return versions[0]


def prepare_kernel(cache_dir: str | Path | None = None) -> KernelImage:
    """Find, fetch and unpack the newest stock ``linux-image-6.1.0-N-amd64`` and
    ``busybox-static``; return their paths.

    Idempotent: what is already unpacked in the cache is reused; when apt offers a newer
    kernel it is fetched, and when fetching fails an already unpacked one is used.
    ``$MIP6LAB_QEMU_KERNEL_PACKAGE`` pins the package name.
    """
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    cache = cache.resolve()
    with _Lock(cache):
        cached = sorted((p for p in cache.glob("linux-image-*") if (p / ".complete").exists()),
                        key=lambda p: _sort_key(p.name), reverse=True)
        pinned = os.environ.get("MIP6LAB_QEMU_KERNEL_PACKAGE")
        if pinned:
            candidates = [pinned]
        else:
            candidates = _kernel_candidates()
            if not candidates and not cached:
                _apt_update()
                candidates = _kernel_candidates()
        root: Path | None = None
        errors: list[str] = []
        for package in candidates[:2]:
            try:
                root = _fetch_and_unpack(cache, package)
                break
            except (KernelVMError, subprocess.TimeoutExpired) as exc:
                errors.append(str(exc))
        if root is None and cached and not pinned:
            root = cached[0]
        if root is None:
            raise KernelVMError("no stock linux-image-6.1.0-*-amd64 could be fetched: "
                                + ("; ".join(errors) or "apt knows none"))
        version = _kernel_version(root)
        if not (root / "lib" / "modules" / version / "modules.dep").exists():
            _run([_need("depmod", "kmod"), "-b", str(root), version])
        vmlinuz = root / "boot" / f"vmlinuz-{version}"
        if not vmlinuz.exists():
            raise KernelVMError(f"no {vmlinuz}")

        bb_root = _unpacked(cache, BUSYBOX_PACKAGE)
        if not (bb_root / ".complete").exists():
            bb_root = _fetch_and_unpack(cache, BUSYBOX_PACKAGE)
        busybox = bb_root / "bin" / "busybox"
        if not busybox.exists():
            raise KernelVMError(f"no {busybox}")
        return KernelImage(package=root.name, version=version, root=root, vmlinuz=vmlinuz,
                           modules_dir=root / "lib" / "modules" / version, busybox=busybox,
                           cache_dir=cache)


def _sort_key(name: str) -> tuple[int, int]:
    m = _KERNEL_RE.fullmatch(name)
    return (int(m.group(2)), 0 if m.group(3) else 1) if m else (-1, 0)


# -- the initramfs -------------------------------------------------------------------------


def _module_order(modules_dir: Path, wanted: Iterable[str]) -> list[Path]:
    """The module files for ``wanted`` and their dependencies, dependencies first."""
    deps: dict[str, tuple[str, list[str]]] = {}
    for line in (modules_dir / "modules.dep").read_text().splitlines():
        if ":" not in line:
            continue
        path, _, rest = line.partition(":")
        deps[_mod_name(path)] = (path, [_mod_name(d) for d in rest.split()])
    builtin = set()
    builtin_file = modules_dir / "modules.builtin"
    if builtin_file.exists():
        builtin = {_mod_name(p) for p in builtin_file.read_text().split()}
    order: list[str] = []

    def visit(name: str, trail: tuple[str, ...] = ()) -> None:
        if name in order or name in builtin:
            return
        if name not in deps:
            raise KernelVMError(f"module {name} not in {modules_dir}/modules.dep")
        if name in trail:
            raise KernelVMError(f"module dependency cycle: {' -> '.join(trail + (name,))}")
        for dep in deps[name][1]:
            visit(dep, trail + (name,))
        order.append(name)

    for name in wanted:
        visit(_mod_name(name))
    return [modules_dir / deps[name][0] for name in order]


def _mod_name(path: str) -> str:
    base = path.rsplit("/", 1)[-1]
    base = base.split(".ko", 1)[0]
    return base.replace("-", "_")


class _Cpio:
    """A minimal ``newc`` cpio writer (what the kernel unpacks as an initramfs)."""

    def __init__(self) -> None:
        self._buf = io.BytesIO()
        self._ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0),
               nlink: int = 1) -> None:
        encoded = name.encode() + b"\0"
        fields = [self._ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1],
                  len(encoded), 0]
        self._ino += 1
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        self._buf.write(header + encoded)
        self._pad()
        self._buf.write(data)
        self._pad()

    def _pad(self) -> None:
        self._buf.write(b"\0" * (-self._buf.tell() % 4))

    def directory(self, name: str) -> None:
        self._entry(name, 0o040755, nlink=2)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, 0o100000 | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, 0o120777, target.encode())

    def chardev(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        self._entry(name, 0o020000 | mode, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        self._buf.write(b"\0" * (-self._buf.tell() % 512))
        return self._buf.getvalue()


def build_initramfs(image: KernelImage) -> Path:
    """Build (once; cached by content) the stage-1 initramfs for ``image``."""
    modules = _module_order(image.modules_dir, INITRAMFS_MODULES)
    stage1 = STAGE1.read_bytes()
    key = hashlib.sha256()
    key.update(stage1)
    key.update(str(image.busybox.stat().st_size).encode())
    for m in modules:
        key.update(m.name.encode() + str(m.stat().st_size).encode())
    path = image.cache_dir / f"initramfs-{image.version}-{key.hexdigest()[:12]}.cpio"
    if path.exists():
        return path
    cpio = _Cpio()
    for d in ("bin", "dev", "etc", "lib", "lib/modules", "newroot", "proc", "sys", "tmp"):
        cpio.directory(d)
    cpio.chardev("dev/console", 5, 1)
    cpio.chardev("dev/null", 1, 3, 0o666)
    cpio.file("bin/busybox", image.busybox.read_bytes(), 0o755)
    cpio.symlink("bin/sh", "busybox")
    names = []
    for m in modules:
        data = m.read_bytes()
        name = m.name
        if name.endswith(".ko.xz"):
            data, name = lzma.decompress(data), name[:-3]
        elif not name.endswith(".ko"):
            raise KernelVMError(f"cannot load compressed module {m} in the initramfs")
        cpio.file(f"lib/modules/{name}", data)
        names.append(name)
    cpio.file("etc/mip6lab-modules", ("\n".join(names) + "\n").encode())
    cpio.file("init", stage1, 0o755)
    tmp = path.with_name(path.name + f".{os.getpid()}.part")
    tmp.write_bytes(cpio.finish())
    tmp.replace(path)
    return path


# -- running a VM --------------------------------------------------------------------------


def python_env() -> dict[str, str]:
    """Environment for running this checkout's Python code inside the guest."""
    return {
        "MIP6LAB_PYTHON": sys.executable,
        "MIP6LAB_REPO": str(REPO_ROOT),
        "PYTHONPATH": str(REPO_ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",  # the guest's root is read-only
        "PYTHONUNBUFFERED": "1",  # output survives a kill at the time limit
    }


def _is_under(path: Path, parent: str) -> bool:
    return path == Path(parent) or Path(parent) in path.parents


def _masked(path: Path) -> bool:
    return any(_is_under(path, m) for m in GUEST_MASKED)


def _qemu_path(path: Path) -> str:
    return str(path).replace(",", ",,")  # QEMU option values escape commas by doubling


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class KernelVM:
    """Boots Debian's stock kernel under QEMU (TCG) to run one script per :meth:`run`.

    ``image``: from :func:`prepare_kernel` (called with ``cache_dir`` when omitted).
    ``shares``: extra host directories the guest should see read-only at their own path
    (only needed under /tmp or /run; the rest of ``/`` is visible anyway).
    """

    def __init__(self, image: KernelImage | None = None, *, cache_dir: str | Path | None = None,
                 memory_mb: int = 1024, cpus: int = 2, shares: Iterable[str | Path] = (),
                 nics: int = 0, qemu: str = "qemu-system-x86_64", cmdline: str = "",
                 precompile: bool = True) -> None:
        self.image = image or prepare_kernel(cache_dir)
        self.memory_mb = memory_mb
        if not 0 <= nics <= 8:
            raise ValueError("nics must be between 0 and 8")
        self.nics = nics
        self.cpus = cpus
        self.qemu = qemu
        self.extra_cmdline = cmdline
        self.shares = [Path(s).resolve() for s in shares]
        self.initramfs = build_initramfs(self.image)
        self.precompile = precompile
        self._compiled = False
        self.pids: list[int] = []  # every QEMU process this object started

    def compile_package(self) -> None:
        """Byte-compile the mip6lab package on the host (``__pycache__``, gitignored).

        The guest's root is read-only, so a guest Python that finds no ``.pyc`` compiles
        every module again in every process, under TCG: ``import mip6lab.ipsec`` took
        10-14 s without, 4.5-5 s with. ``PYTHONDONTWRITEBYTECODE`` on the host (set on
        the build machines) would otherwise leave the checkout without any.
        """
        if self._compiled:
            return
        self._compiled = True
        try:
            subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0",
                            str(REPO_ROOT / "mip6lab")], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300,
                           check=False)
        except (OSError, subprocess.TimeoutExpired):  # only an optimisation
            pass

    def _share_paths(self) -> list[Path]:
        """Directories to share again because the guest's mounts would hide them."""
        needed = [REPO_ROOT, Path(sys.prefix), Path(sys.base_prefix),
                  Path(sys.executable).resolve().parent, self.image.root]
        paths = [p.resolve() for p in needed if _masked(p.resolve())] + self.shares
        unique: list[Path] = []
        for p in sorted(set(paths), key=lambda p: len(p.parts)):
            if not any(_is_under(p, str(u)) for u in unique):
                unique.append(p)
        return unique

    def command(self, job: Path, console: Path) -> list[str]:
        """The QEMU command line for a run with job directory ``job``."""
        cmdline = ("console=ttyS0,115200 panic=-1 quiet loglevel=4 rdinit=/init "
                   "random.trust_cpu=on mitigations=off " + self.extra_cmdline).strip()
        cmd = [
            self.qemu,
            # TCG: /dev/kvm exists on the build machines (themselves Firecracker guests)
            # but a KVM guest hangs after decompression (-cpu qemu64) or QEMU aborts
            # setting MSR 0x10a (-cpu host).
            "-accel", "tcg",
            "-cpu", "max", "-smp", str(self.cpus), "-m", str(self.memory_mb),
            "-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none",
            "-no-reboot", "-nic", "none",
            "-chardev", f"file,id=con,path={_qemu_path(console)}", "-serial", "chardev:con",
            "-kernel", str(self.image.vmlinuz), "-initrd", str(self.initramfs),
            "-append", cmdline,
            "-fsdev", "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap",
            "-device", "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot",
            "-fsdev", f"local,id=job,path={_qemu_path(job)},security_model=none,multidevs=remap",
            "-device", "virtio-9p-pci,fsdev=job,mount_tag=job",
        ]
        for i, path in enumerate(self._share_paths()):
            cmd += ["-fsdev", f"local,id=s{i},path={_qemu_path(path)},security_model=none,"
                              "readonly=on,multidevs=remap",
                    "-device", f"virtio-9p-pci,fsdev=s{i},mount_tag=s{i}"]
        return cmd

    def run(self, script: str, timeout: float = DEFAULT_TIMEOUT,
            env: Mapping[str, str] | None = None,
            files: Mapping[str, str | bytes] | None = None) -> VMResult:
        """Boot, run ``script`` with bash as root in the guest, power off; return the
        script's exit status and merged output.

        ``timeout`` bounds the whole run (boot included); when it passes, QEMU is killed
        and :class:`KernelVMTimeout` raised. ``env`` adds to :func:`python_env` and
        the guest's ``MIP6LAB_*`` variables. ``files`` are written to ``$MIP6LAB_IN/<name>``.
        """
        with self.start(script, env=env, files=files) as vm_run:
            return vm_run.wait(timeout)

    def start(self, script: str, env: Mapping[str, str] | None = None,
              files: Mapping[str, str | bytes] | None = None) -> VMRun:
        """Boot in the background and return at once; see :class:`VMRun`.

        Use it as a context manager (``with vm.start(...) as r: ... r.wait(60)``): leaving
        the block kills QEMU if it still runs and removes the temporary directory.
        """
        if self.precompile:
            self.compile_package()
        tmp = Path(tempfile.mkdtemp(prefix="mip6lab-vm-"))
        try:
            job = tmp / "job"
            job.mkdir()
            self._fill_job(job, script, env or {}, files or {})
            return VMRun(self, tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _fill_job(self, job: Path, script: str, env: Mapping[str, str],
                  files: Mapping[str, str | bytes]) -> None:
        shutil.copyfile(STAGE2, job / "stage2.sh")
        (job / "script.sh").write_text(script)
        (job / "config.sh").write_text(
            f"MIP6LAB_MODULES_ROOT={shlex.quote(str(self.image.root))}\n"
            f"MIP6LAB_NICS={self.nics}\n")
        (job / "shares").write_text("".join(
            f"s{i}\t{p}\n" for i, p in enumerate(self._share_paths())))
        variables = python_env()
        variables.update({"MIP6LAB_MODULES_ROOT": str(self.image.root),
                          "MIP6LAB_KERNEL": self.image.version,
                          "MIP6LAB_IN": f"{GUEST_JOB}/in"})
        variables.update(env)
        lines = []
        for name, value in variables.items():
            if not _ENV_NAME.fullmatch(name):
                raise ValueError(f"bad environment variable name {name!r}")
            lines.append(f"export {name}={shlex.quote(str(value))}\n")
        (job / "env.sh").write_text("".join(lines))
        inputs = job / "in"
        inputs.mkdir()
        for name, content in files.items():
            target = (inputs / name).resolve()
            if inputs.resolve() not in target.parents:
                raise ValueError(f"file name {name!r} leaves $MIP6LAB_IN")
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, str):
                target.write_text(content)
            else:
                target.write_bytes(content)
        (job / "out").mkdir()
        for d in (job, inputs, job / "out"):
            os.chmod(d, 0o777)


def nic_mac(index: int) -> str:
    """The guest MAC address of NIC ``index`` (``eth<index>`` in the guest)."""
    return f"52:54:00:6d:36:{index:02x}"


class VMRun:
    """One booting or running VM, started by :meth:`KernelVM.start`.

    * :meth:`wait` — wait for the power-off and collect the :class:`VMResult`;
    * :meth:`nic` — the host end of the guest's ``eth<i>`` (``KernelVM(nics=N)``): a
      connected ``AF_UNIX``/``SOCK_DGRAM`` socket, one Ethernet frame per datagram,
      both ways, no FCS. Nothing but this process is on the other end.
    * :meth:`wait_for_file` / :meth:`touch` — rendezvous with the guest script through
      the job directory: the guest writes ``$MIP6LAB_JOB/<name>`` (for instance
      ``ready`` once ``eth0`` is configured) and polls for files the host touches
      (``while [ ! -e "$MIP6LAB_JOB/done" ]; do sleep 0.1; done``).
    """

    def __init__(self, vm: KernelVM, tmp: Path) -> None:
        self.vm = vm
        self.tmp = tmp
        self.job = tmp / "job"
        self.console_path = tmp / "console.log"
        self._stderr_path = tmp / "qemu.stderr"
        self._nics: list[socket.socket] = []
        self.result: VMResult | None = None
        try:
            netdevs: list[str] = []
            for i in range(vm.nics):
                host_end, qemu_end = tmp / f"nic{i}.host", tmp / f"nic{i}.qemu"
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                sock.bind(str(host_end))
                self._nics.append(sock)
                netdevs += [
                    "-netdev", f"dgram,id=nic{i},local.type=unix,"
                               f"local.path={_qemu_path(qemu_end)},remote.type=unix,"
                               f"remote.path={_qemu_path(host_end)}",
                    "-device", f"virtio-net-pci,netdev=nic{i},mac={nic_mac(i)}"]
            command = vm.command(self.job, self.console_path) + netdevs
            self.started = time.monotonic()
            with open(self._stderr_path, "wb") as err:
                self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=err,
                                             stderr=err, start_new_session=True,
                                             preexec_fn=_die_with_parent(os.getpid()))
        except BaseException:
            self.close()
            raise
        self.pid = self.proc.pid
        vm.pids.append(self.pid)
        _LIVE[self.pid] = self.proc

    def __enter__(self) -> VMRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def running(self) -> bool:
        return self.proc.poll() is None

    def nic(self, index: int = 0) -> socket.socket:
        """The host end of the guest's ``eth<index>``; connected once QEMU is up."""
        sock = self._nics[index]
        try:
            sock.getpeername()
        except OSError:
            peer = str(self.tmp / f"nic{index}.qemu")
            deadline = time.monotonic() + 30
            while not os.path.exists(peer):
                if not self.running() or time.monotonic() > deadline:
                    raise KernelVMError(f"QEMU did not open {peer}", self.console())
                time.sleep(0.02)
            sock.connect(peer)
        return sock

    def console(self) -> str:
        return _read_text(self.console_path)

    def output(self) -> str:
        """What the script has written so far."""
        return _read_text(self.job / "output")

    def touch(self, name: str, content: str = "") -> None:
        """Create ``$MIP6LAB_JOB/<name>`` for the guest to see."""
        path = self.job / name
        path.with_name(path.name + ".part").write_text(content)
        path.with_name(path.name + ".part").replace(path)

    def wait_for_file(self, name: str, timeout: float = 60.0) -> str:
        """Wait until the guest has created ``$MIP6LAB_JOB/<name>``; return its text."""
        path = self.job / name
        deadline = time.monotonic() + timeout
        while not path.exists():
            if not self.running():
                raise KernelVMError(f"guest ended before it created {name}\n--- output ---\n"
                                    f"{self.output()}", self.console(), self.output())
            if time.monotonic() > deadline:
                raise KernelVMTimeout(f"guest did not create {name} within {timeout:.0f} s"
                                      f"\n--- output so far ---\n{self.output()}",
                                      self.console(), self.output())
            time.sleep(0.05)
        return _read_text(path)

    def wait(self, timeout: float = DEFAULT_TIMEOUT) -> VMResult:
        """Wait for the power-off (at most ``timeout`` s counted from the start, boot
        included; then QEMU is killed and :class:`KernelVMTimeout` raised)."""
        if self.result is not None:
            return self.result
        remaining = max(0.0, timeout - (time.monotonic() - self.started))
        timed_out = False
        try:
            self.proc.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            self.kill()
        elapsed = time.monotonic() - self.started
        console_text, output = self.console(), self.output()
        if timed_out:
            raise KernelVMTimeout(f"guest run exceeded {timeout:.0f} s; QEMU (pid {self.pid})"
                                  f" killed\n--- output so far ---\n{output}",
                                  console_text, output)
        status_file = self.job / "status"
        if not status_file.exists():
            qemu_err = _read_text(self._stderr_path).strip()
            raise KernelVMError(
                f"guest did not report an exit status (QEMU exited {self.proc.returncode}"
                + (f": {qemu_err}" if qemu_err else "") + ")", console_text, output)
        started = _read_text(self.job / "started").split()
        files = {}
        out_dir = self.job / "out"
        if out_dir.is_dir():
            for p in sorted(out_dir.rglob("*")):
                if p.is_file():
                    files[str(p.relative_to(out_dir))] = p.read_bytes()
        self.result = VMResult(returncode=int(status_file.read_text().strip()), output=output,
                               console=console_text,
                               boot_seconds=float(started[0]) if started else None,
                               elapsed=elapsed, pid=self.pid, files=files)
        return self.result

    def kill(self) -> None:
        """End QEMU (SIGKILL to its PID) if it still runs, and reap it."""
        proc = getattr(self, "proc", None)
        if proc is not None:
            _kill(proc)
            _LIVE.pop(proc.pid, None)

    def close(self) -> None:
        """Kill QEMU if needed, close the NIC sockets, remove the temporary directory."""
        self.kill()
        for sock in self._nics:
            sock.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


# QEMU processes started and not yet reaped: killed at interpreter exit at the latest.
_LIVE: dict[int, subprocess.Popen] = {}


@atexit.register
def _kill_leftovers() -> None:
    for proc in list(_LIVE.values()):
        _kill(proc)
    _LIVE.clear()


def _die_with_parent(parent: int):
    """A ``preexec_fn``: the child gets SIGKILL when this process dies, even by SIGKILL
    (``PR_SET_PDEATHSIG``), so no QEMU outlives a killed test run."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):  # pragma: no cover - not glibc/Linux
        return None

    def preexec() -> None:
        prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def _kill(proc: subprocess.Popen) -> None:
    """End the QEMU process we started, by its PID, and reap it."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be ignored
        pass


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


# -- reading the guest's XFRM state ---------------------------------------------------------


@dataclass(frozen=True)
class XfrmStateStats:
    """One SA as ``ip -s xfrm state`` prints it: identity, algorithms and counters."""

    src: str
    dst: str
    proto: str  # esp, ah, comp, route2, hao
    spi: int
    mode: str
    algorithms: tuple[str, ...]  # e.g. ("aead rfc4106(gcm(aes))",)
    bytes: int  # lifetime current: bytes
    packets: int  # lifetime current: packets
    oseq: int | None  # anti-replay context: outbound sequence number
    seq: int | None  # anti-replay context: highest inbound sequence number
    replay: int | None  # stats: packets dropped as replays
    failed: int | None  # stats: packets that failed (integrity, decryption)
    encap: str | None = None  # "espinudp 4500 4500" for UDP encapsulation


_STATE_HEAD = re.compile(r"^src (\S+) dst (\S+)\s*$")
_STATE_ID = re.compile(r"^\s+proto (\S+) spi (0x[0-9a-fA-F]+)(?:\(\d+\))? .*mode (\S+)")
_LIFETIME = re.compile(r"^\s+(\d+)\(bytes\), (\d+)\(packets\)")
_ANTI_REPLAY = re.compile(r"anti-replay(?: esn)? context:.*?\bseq (0x[0-9a-fA-F]+), oseq (0x[0-9a-fA-F]+)")
_STATS = re.compile(r"^\s+replay-window \d+ replay (\d+) failed (\d+)")
_ALGO = re.compile(r"^\s+(aead|enc|auth|auth-trunc|comp) (\S+)")
_ENCAP = re.compile(r"^\s+encap type (\S+) sport (\d+) dport (\d+)")


def parse_xfrm_states(text: str) -> list[XfrmStateStats]:
    """Parse the SAs in ``ip -s xfrm state`` output (other lines are ignored).

    Raises ``ValueError`` for an SA block without its id line.
    """
    states: list[XfrmStateStats] = []
    block: dict | None = None

    def flush() -> None:
        if block is None:
            return
        if "spi" not in block:
            raise ValueError(f"xfrm state for {block['src']} -> {block['dst']} has no id line")
        states.append(XfrmStateStats(
            src=block["src"], dst=block["dst"], proto=block["proto"], spi=block["spi"],
            mode=block["mode"], algorithms=tuple(block["algorithms"]),
            bytes=block.get("bytes", 0), packets=block.get("packets", 0),
            oseq=block.get("oseq"), seq=block.get("seq"), replay=block.get("replay"),
            failed=block.get("failed"), encap=block.get("encap")))

    in_current = False
    for line in text.splitlines():
        if m := _STATE_HEAD.match(line):
            flush()
            block = {"src": m.group(1), "dst": m.group(2), "algorithms": []}
            in_current = False
            continue
        if block is None or not line.startswith((" ", "\t")):
            flush()
            block = None
            continue
        if m := _STATE_ID.match(line):
            block.update(proto=m.group(1), spi=int(m.group(2), 16), mode=m.group(3))
        elif m := _ALGO.match(line):
            block["algorithms"].append(f"{m.group(1)} {m.group(2)}")
        elif m := _ENCAP.match(line):
            block["encap"] = f"{m.group(1)} {m.group(2)} {m.group(3)}"
        elif m := _ANTI_REPLAY.search(line):
            block.update(seq=int(m.group(1), 16), oseq=int(m.group(2), 16))
        elif line.strip() == "lifetime current:":
            in_current = True
        elif in_current and (m := _LIFETIME.match(line)):
            block.update(bytes=int(m.group(1)), packets=int(m.group(2)))
            in_current = False
        elif m := _STATS.match(line):
            block.update(replay=int(m.group(1)), failed=int(m.group(2)))
    flush()
    return states
