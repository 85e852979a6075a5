"""Take away the worker's right to write files anywhere but its staging folder (Linux Landlock, best effort).

Once the worker has imported what it needs, it asks the kernel to refuse every file write, creation, removal,
rename or truncation outside the staging folder it was handed. A TorchScript teacher that calls
`torch.from_file(..., shared=True)` or plants a `.pth` then gets "Permission denied", whatever route it takes.
Reading is not restricted (the runner's imports still load modules); already-open descriptors keep working.
On kernels without Landlock (before 5.13, or disabled) nothing happens and `lock_writes` says so.
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys

_CREATE, _ADD_RULE, _RESTRICT = 444, 445, 446  # the same numbers on every Linux architecture (generic syscall table)
_PR_SET_NO_NEW_PRIVS = 38
_RULE_PATH_BENEATH = 1
_WRITE_FILE, _REMOVE_DIR, _REMOVE_FILE = 1 << 1, 1 << 4, 1 << 5
_MAKE = sum(1 << b for b in range(6, 13))  # char, dir, reg, sock, fifo, block, symlink
_MAKE_REG, _REFER, _TRUNCATE = 1 << 8, 1 << 13, 1 << 14


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def abi_version() -> int:
    """The kernel's Landlock ABI version, 0 when unavailable."""
    libc = _libc()
    if libc is None:
        return 0
    version = libc.syscall(_CREATE, None, ctypes.c_size_t(0), ctypes.c_uint32(1))  # LANDLOCK_CREATE_RULESET_VERSION
    return max(int(version), 0)


def lock_writes(writable_dir_fd: int | None) -> str:
    """Forbid file writes outside `writable_dir_fd` for this process and its threads; returns what was done."""
    abi = abi_version()
    libc = _libc()
    if abi < 1 or libc is None:
        return "no Landlock on this kernel: file writes are not restricted"
    handled = (
        _WRITE_FILE | _REMOVE_DIR | _REMOVE_FILE | _MAKE | (_REFER if abi >= 2 else 0) | (_TRUNCATE if abi >= 3 else 0)
    )
    attr = struct.pack("<Q", handled)
    ruleset = libc.syscall(_CREATE, ctypes.c_char_p(attr), ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    if ruleset < 0:
        return f"Landlock refused the ruleset ({os.strerror(ctypes.get_errno())}): file writes are not restricted"
    try:
        if writable_dir_fd is not None:
            allowed = _WRITE_FILE | _REMOVE_FILE | _MAKE_REG | (_TRUNCATE if abi >= 3 else 0)
            rule = struct.pack("<Qi", allowed, writable_dir_fd)  # struct landlock_path_beneath_attr is packed
            if (
                libc.syscall(
                    _ADD_RULE, ruleset, ctypes.c_uint32(_RULE_PATH_BENEATH), ctypes.c_char_p(rule), ctypes.c_uint32(0)
                )
                != 0
            ):
                return (
                    f"Landlock refused the staging rule ({os.strerror(ctypes.get_errno())}): file writes are not "
                    "restricted"
                )
        if (
            libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            or libc.syscall(_RESTRICT, ruleset, ctypes.c_uint32(0)) != 0
        ):
            return (
                f"Landlock could not restrict this process ({os.strerror(ctypes.get_errno())}): file writes are not "
                "restricted"
            )
    finally:
        os.close(ruleset)
    return f"Landlock ABI {abi}: file writes allowed only in the staging folder"
