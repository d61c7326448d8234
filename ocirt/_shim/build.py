"""cffi build script: compiles ocirt._shim._ocirt_shim (API mode) at install.

setup.py also builds ``ocirt-init`` (stage2.c) as a static executable next
to the extension; see docs/architecture.md for why it exists.
"""

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent

ffibuilder = FFI()
# The cdef is shim.h minus the includes (cffi parses only declarations).
ffibuilder.cdef(
    "\n".join(
        line
        for header in ("shim.h", "bpf.h", "seccomp.h")
        for line in (HERE / header).read_text().splitlines()
        if not line.startswith("#")
    )
)
ffibuilder.set_source(
    "ocirt._shim._ocirt_shim",
    '#include "shim.h"\n'
    + (HERE / "shim.c").read_text().replace('#include "shim.h"', "")
    + '#include "bpf.h"\n'
    + (HERE / "bpf.c").read_text().replace('#include "bpf.h"', "")
    + '#include "seccomp.h"\n'
    + (HERE / "seccomp.c").read_text().replace('#include "seccomp.h"', ""),
    # -iquote, not -I: our "seccomp.h" must not shadow libseccomp's <seccomp.h>.
    # libseccomp compiles linux.seccomp to BPF (ocirt/linux/seccomp.py); the
    # library is loaded with the module, before the init's pivot_root.
    libraries=["seccomp"],
    extra_compile_args=["-O2", "-Wall", "-iquote", str(HERE)],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
