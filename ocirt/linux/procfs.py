"""Text files of /proc and /sys, read and written as bytes.

``open(path)`` in text mode needs the codec registry, i.e. the ``encodings``
package: under the compiled launcher's core phase (ocirt/_shim/launcher.c)
it is not loaded yet (~0.5 ms to load for a read of mountinfo), and the
container's init, once it has sealed its imports, could not load it at all.
``bytes.decode`` and ``str.encode`` with UTF-8 need neither.
"""


def read_text(path: str) -> str:
    """PATH's text; bytes that are not UTF-8 (a path in mountinfo) stay surrogates."""
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "surrogateescape")


def write_text(path: str, text: str) -> None:
    with open(path, "wb") as f:
        f.write(text.encode())


def cgroup_paths(pid: int | str = "self") -> dict[str, str]:
    """/proc/PID/cgroup as {controllers as listed ("cpu,cpuacct", "name=systemd",
    "" for cgroup2): path}."""
    paths = {}
    for line in read_text(f"/proc/{pid}/cgroup").splitlines():
        _hid, controllers, path = line.split(":", 2)
        paths[controllers] = path
    return paths
