"""The systemd cgroup driver (``--systemd-cgroup``).

runc's systemd driver asks systemd (over D-Bus) for a transient scope unit
"<prefix>-<name>.scope" in "<slice>" and then sets the resources both as unit
properties and in the cgroup files.  That path is not implemented: this
runtime has been developed on hosts without systemd, where it could not be
tested.  What is implemented is the validation runc does first, with the
same wording, so that ``--systemd-cgroup`` fails clearly instead of silently
falling back to the cgroupfs driver.
"""

from __future__ import annotations

import os

from ocirt.cgroups import CgroupError, Manager

# sd_booted(3): systemd creates this directory early when it runs as PID 1.
SYSTEMD_RUN_DIR = "/run/systemd/system"
SYSTEM_BUS = "/run/dbus/system_bus_socket"
SYSTEMD_PRIVATE_BUS = "/run/systemd/private"


def is_running_systemd() -> bool:
    return os.path.isdir(SYSTEMD_RUN_DIR)


def parse_path(cgroups_path: str, container_id: str) -> tuple[str, str, str]:
    """ "slice:prefix:name" -> (slice, prefix, name); "" -> ("", "runc", ID) like runc."""
    if not cgroups_path:
        return "", "runc", container_id
    parts = cgroups_path.split(":")
    if len(parts) != 3:
        raise CgroupError(
            'expected cgroupsPath to be of format "slice:prefix:name" for systemd cgroups, '
            f'got "{cgroups_path}" instead'
        )
    return parts[0], parts[1], parts[2]


def new_manager(cgroups_path: str, container_id: str, *, rootless: bool) -> Manager:
    if not is_running_systemd():
        raise CgroupError("systemd not running on this host, cannot use systemd cgroups manager")
    parse_path(cgroups_path, container_id)
    bus = os.path.join(os.environ.get("XDG_RUNTIME_DIR", ""), "systemd/private") if rootless else ""
    reachable = [p for p in (bus, SYSTEMD_PRIVATE_BUS, SYSTEM_BUS) if p and os.path.exists(p)]
    where = reachable[0] if reachable else "no systemd D-Bus socket"
    raise CgroupError(
        f"systemd cgroup driver is not supported by this runtime yet ({where}); "
        "run without --systemd-cgroup to use the cgroupfs driver"
    )
