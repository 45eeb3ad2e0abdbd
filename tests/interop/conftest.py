"""Fixtures for the interop tests that need the Linux kernel's ESP: a QEMU VM with Debian's
stock kernel (mip6lab.testing.qemu_kernel). Preparing the kernel (apt-get download +
dpkg-deb -x, cached) happens once per session; each test then boots its own VM."""

from __future__ import annotations

import pytest

from mip6lab.testing.prereq import missing, require_root, require_tool

WHY = "to boot Debian's kernel under QEMU for kernel ESP (mip6lab.testing.qemu_kernel)"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "qemu: boots Debian's stock kernel under QEMU/TCG (about 6-15 s a boot)")


@pytest.fixture(scope="session")
def kernel_image():
    """The unpacked stock kernel + busybox (:func:`prepare_kernel`), or skip/fail."""
    from mip6lab.testing.qemu_kernel import KernelVMError, prepare_kernel

    require_root(WHY)
    require_tool("qemu-system-x86_64", WHY)
    require_tool("modprobe", WHY)  # kmod: depmod on the host, modprobe in the guest
    require_tool("ip", WHY)
    try:
        return prepare_kernel()
    except KernelVMError as exc:
        missing(f"cannot prepare the stock kernel for QEMU: {exc}")


@pytest.fixture(scope="session")
def kernel_vm(kernel_image):
    """A :class:`KernelVM` without network cards (``-nic none``)."""
    from mip6lab.testing.qemu_kernel import KernelVM

    return KernelVM(kernel_image)
