"""The cgroup v2 device filter: an eBPF program made from the device rules.

cgroup v2 has no devices.allow/deny files: access is decided by a
BPF_PROG_TYPE_CGROUP_DEVICE program attached to the cgroup.  As runc does,
the rules are first run through an emulator of the v1 kernel semantics (so a
rule list means the same on both versions), and the program tests the
resulting exceptions in turn, falling through to the default verdict (the
rules and the emulator are ``ocirt.cgroups.devrules``).

The program is written out as raw instructions (no compiler, no libbpf); the
only native piece is the ``bpf(2)`` call (``ocirt/_shim/bpf.c``), imported
lazily so that v1 hosts and the short commands never load it.
"""

from __future__ import annotations

import _struct as struct  # not struct.py: not in the code bundle, it finishes the start
import errno
import posix  # not os (~1.2 ms of imports)

from ocirt.cgroups import CgroupError
from ocirt.cgroups.devrules import Emulator, Rule, rules_from_spec  # noqa: F401 (re-exported)

TYPE_CHECKING = False  # typing costs ~2 ms to import: annotations only
if TYPE_CHECKING:
    from typing import Any

# -- the program ----------------------------------------------------------------
# struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
# access_type = (BPF_DEVCG_ACC_* << 16) | BPF_DEVCG_DEV_*
_DEV_TYPE = {"b": 1, "c": 2}
_ACC_BITS = {"m": 1, "r": 2, "w": 4}

# Opcodes (linux/bpf_common.h, linux/bpf.h).
_LDX_W = 0x61  # BPF_LDX | BPF_MEM | BPF_W
_AND32_K = 0x54  # BPF_ALU | BPF_AND | BPF_K
_RSH32_K = 0x74  # BPF_ALU | BPF_RSH | BPF_K
_MOV32_X = 0xBC  # BPF_ALU | BPF_MOV | BPF_X
_MOV32_K = 0xB4  # BPF_ALU | BPF_MOV | BPF_K
_JNE_K = 0x55  # BPF_JMP | BPF_JNE | BPF_K
_JNE_X = 0x5D  # BPF_JMP | BPF_JNE | BPF_X
_EXIT = 0x95  # BPF_JMP | BPF_EXIT


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def program(emu: Emulator) -> bytes:
    """The filter: R2 type, R3 access, R4 major, R5 minor; one block per exception."""
    insns = [
        _insn(_LDX_W, 2, 1, 0),
        _insn(_AND32_K, 2, imm=0xFFFF),
        _insn(_LDX_W, 3, 1, 0),
        _insn(_RSH32_K, 3, imm=16),
        _insn(_LDX_W, 4, 1, 4),
        _insn(_LDX_W, 5, 1, 8),
    ]
    for rule in emu.exceptions():
        insns.extend(_rule_block(rule))
    insns += [_insn(_MOV32_K, 0, imm=int(emu.default_allow)), _insn(_EXIT)]
    return b"".join(insns)


def _rule_block(rule: Rule) -> list[bytes]:
    # Each test jumps past the rest of the block ("next rule") on mismatch;
    # offsets are filled in once the block's length is known.
    tests: list[tuple[int, int, int, int]] = []  # (code, dst, src, imm) of a JNE
    pre: dict[int, list[bytes]] = {}
    tests.append((_JNE_K, 2, 0, _DEV_TYPE[rule.type]))
    if rule.access != "rwm":
        mask = sum(_ACC_BITS[c] for c in rule.access)
        # R1 = R3 & mask; the request must ask for nothing outside the rule.
        pre[len(tests)] = [_insn(_MOV32_X, 1, 3), _insn(_AND32_K, 1, imm=mask)]
        tests.append((_JNE_X, 1, 3, 0))
    if rule.major is not None:
        tests.append((_JNE_K, 4, 0, rule.major))
    if rule.minor is not None:
        tests.append((_JNE_K, 5, 0, rule.minor))
    verdict = [_insn(_MOV32_K, 0, imm=int(rule.allow)), _insn(_EXIT)]
    # Lay out: [pre_i, test_i]... verdict; a test's offset skips what follows it.
    layout: list[tuple[str, Any]] = []
    for i, test in enumerate(tests):
        for raw in pre.get(i, []):
            layout.append(("raw", raw))
        layout.append(("jne", test))
    out = []
    total = len(layout) + len(verdict)
    for position, (kind, item) in enumerate(layout):
        if kind == "raw":
            out.append(item)
        else:
            code, dst, src, imm = item
            out.append(_insn(code, dst, src, off=total - position - 1, imm=imm))
    return out + verdict


# -- bpf(2) -------------------------------------------------------------------------
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2


def _bpf(cmd: int, attr: bytes, name: str, keep: tuple = ()) -> tuple[int, bytes]:
    """Run bpf(CMD, ATTR); returns (result, the attr as the kernel left it)."""
    from ocirt._shim._ocirt_shim import ffi, lib

    buf = ffi.new("char[]", attr)
    result = lib.ocirt_bpf(cmd, buf, len(attr))
    if result < 0:
        err = ffi.errno
        raise OSError(err, f"bpf({name}): {posix.strerror(err)}")
    del keep  # the buffers ATTR points into lived until here
    return result, bytes(ffi.buffer(buf))


def _address(ffi: Any, cdata: Any) -> int:
    return int(ffi.cast("uintptr_t", cdata))


def load_program(code: bytes) -> int:
    """BPF_PROG_LOAD; on a verifier refusal the message carries its log."""
    from ocirt._shim._ocirt_shim import ffi

    insns = ffi.new("char[]", code)
    license_ = ffi.new("char[]", b"Apache")
    for log_size in (0, 65536):
        log = ffi.new("char[]", max(log_size, 1))
        attr = struct.pack(
            "<IIQQIIQII16sII",
            BPF_PROG_TYPE_CGROUP_DEVICE,
            len(code) // 8,
            _address(ffi, insns),
            _address(ffi, license_),
            1 if log_size else 0,
            log_size,
            _address(ffi, log) if log_size else 0,
            0,
            0,
            b"ocirt_devices",
            0,
            0,
        )
        try:
            fd, _ = _bpf(BPF_PROG_LOAD, attr, "BPF_PROG_LOAD", keep=(insns, license_, log))
            return fd
        except OSError as e:
            if log_size or e.errno not in (errno.EINVAL, errno.EACCES):
                verifier = ffi.string(log).decode(errors="replace").strip() if log_size else ""
                raise CgroupError(
                    f"loading the device filter failed: {e.strerror}"
                    + (f": {verifier}" if verifier else ""),
                    e.errno or 0,
                ) from None
    raise AssertionError("unreachable")


def attached_programs(cgroup_fd: int) -> list[int]:
    """Ids of the device programs attached to the cgroup (BPF_PROG_QUERY)."""
    from ocirt._shim._ocirt_shim import ffi

    ids = ffi.new("uint32_t[]", 64)
    attr = struct.pack("<IIIIQI4x", cgroup_fd, BPF_CGROUP_DEVICE, 0, 0, _address(ffi, ids), 64)
    _, out = _bpf(BPF_PROG_QUERY, attr, "BPF_PROG_QUERY", keep=(ids,))
    count = struct.unpack_from("<I", out, 24)[0]
    return [ids[i] for i in range(count)]


def install(cgroup_dir: str, emu: Emulator) -> None:
    """Attach the filter for EMU to CGROUP_DIR, replacing the one there before.

    The new program is attached (BPF_F_ALLOW_MULTI) before the old ones are
    detached, so the cgroup is never without a filter (runc's fallback path).
    """
    dirfd = posix.open(cgroup_dir, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
    try:
        old = attached_programs(dirfd)
        prog_fd = load_program(program(emu))
        try:
            attr = struct.pack("<IIIII", dirfd, prog_fd, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI, 0)
            try:
                _bpf(BPF_PROG_ATTACH, attr, "BPF_PROG_ATTACH")
            except OSError as e:
                raise CgroupError(
                    f"attaching the device filter to {cgroup_dir} failed: {e.strerror}",
                    e.errno or 0,
                ) from None
        finally:
            posix.close(prog_fd)  # the attachment holds its own reference
        for prog_id in old:
            _detach(dirfd, prog_id)
    finally:
        posix.close(dirfd)


def _detach(dirfd: int, prog_id: int) -> None:
    try:
        fd, _ = _bpf(
            BPF_PROG_GET_FD_BY_ID, struct.pack("<III", prog_id, 0, 0), "BPF_PROG_GET_FD_BY_ID"
        )
    except OSError:
        return  # already gone
    try:
        attr = struct.pack("<IIIII", dirfd, fd, BPF_CGROUP_DEVICE, 0, 0)
        _bpf(BPF_PROG_DETACH, attr, "BPF_PROG_DETACH")
    finally:
        posix.close(fd)
