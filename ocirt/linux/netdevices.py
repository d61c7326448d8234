"""linux.netDevices: host network interfaces moved into the container.

``ocirt create`` moves each interface into the init's network namespace
(renaming it when ``name`` is set) before the init goes on, with its
permanent addresses re-added and the link up, as runc does.  ``ocirt
delete`` moves it back under its host name while the namespace still exists;
had the namespace died first, the kernel would return a physical device to
the host by itself and destroy a virtual one (veth, macvlan...).

pyroute2 is imported here, and this module only when the config has
netDevices: importing it costs ~170 ms, too much for every ``create``.
"""

from __future__ import annotations

import os

from ocirt.errors import OcirtError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

IFA_F_PERMANENT = 0x80
IFNAMSIZ = 16


class NetDeviceError(OcirtError):
    pass


def name_problem(name: str) -> str | None:
    """Why NAME cannot be an interface name (the kernel's dev_valid_name), or None."""
    if not name or len(name) >= IFNAMSIZ:
        return f"{name!r} must be 1 to {IFNAMSIZ - 1} characters"
    if name in (".", "..") or any(c in name for c in "/: \t\n"):
        return f"{name!r} may not be . or .. or contain '/', ':' or whitespace"
    return None


def host_has(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def container_name(host_name: str, settings: dict[str, Any]) -> str:
    return settings.get("name") or host_name


def move_in(netns_path: str, devices: dict[str, dict[str, Any]]) -> None:
    """Move every host interface of DEVICES into the namespace at NETNS_PATH."""
    from pyroute2 import IPRoute

    ns_fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with IPRoute() as host, IPRoute(netns=netns_path) as inside:
            for host_name, settings in devices.items():
                new_name = container_name(host_name, settings)
                try:
                    _move_one(host, inside, ns_fd, host_name, new_name)
                except Exception as e:
                    raise NetDeviceError(
                        f"config.json: linux.netDevices[{host_name!r}]: cannot move {host_name}"
                        f" into the container as {new_name}: {_reason(e)}"
                    ) from e
    finally:
        os.close(ns_fd)


def _move_one(host: Any, inside: Any, ns_fd: int, host_name: str, new_name: str) -> None:
    index = _index(host, host_name)
    addresses = [
        (a.get_attr("IFA_ADDRESS"), a["prefixlen"])
        for a in host.get_addr(index=index)
        if (a.get_attr("IFA_FLAGS") or a["flags"]) & IFA_F_PERMANENT
    ]
    host.link("set", index=index, state="down")
    # One RTM_NEWLINK moves and renames: the new name never exists on the host.
    host.link("set", index=index, net_ns_fd=ns_fd, ifname=new_name)
    moved = _index(inside, new_name)
    for address, prefixlen in addresses:
        inside.addr("add", index=moved, address=address, prefixlen=prefixlen)
    inside.link("set", index=moved, state="up")


def move_out(netns_path: str, devices: dict[str, dict[str, Any]]) -> list[str]:
    """Give the interfaces back to our namespace under their host names.

    Returns warnings (an interface that is gone, a name now taken) instead of
    raising: ``delete`` must go on and remove the container anyway.
    """
    from pyroute2 import IPRoute

    warnings: list[str] = []
    own_ns = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with IPRoute(netns=netns_path) as inside:
            for host_name, settings in devices.items():
                name = container_name(host_name, settings)
                try:
                    index = _index(inside, name)
                    inside.link("set", index=index, state="down")
                    inside.link("set", index=index, net_ns_fd=own_ns, ifname=host_name)
                except Exception as e:
                    warnings.append(
                        f"linux.netDevices[{host_name!r}]: cannot move {name} back: {_reason(e)}"
                    )
    except OSError as e:
        warnings.append(f"linux.netDevices: cannot enter {netns_path}: {e.strerror}")
    finally:
        os.close(own_ns)
    return warnings


def _index(ipr: Any, name: str) -> int:
    found = ipr.link_lookup(ifname=name)
    if not found:
        raise OSError(19, f"no interface {name}")  # ENODEV
    return found[0]


def _reason(e: Exception) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__


def restore(record: dict[str, Any], init_alive: bool) -> list[str]:
    """For ``delete``: move the container's netDevices back, if its namespace exists.

    Call it before the init is killed: a namespace created for the container
    dies with it (a joined one, given by path, outlives it).  Returns warnings.
    """
    linux = (record.get("config") or {}).get("linux") or {}
    devices = linux.get("netDevices")
    if not devices:
        return []
    joined = next(
        (ns.get("path") for ns in linux.get("namespaces") or [] if ns.get("type") == "network"),
        "",
    )
    if joined:
        path = joined
    elif init_alive and record.get("pid"):
        path = f"/proc/{record['pid']}/ns/net"
    else:
        return []  # the namespace is gone: the kernel already returned physical devices
    return move_out(path, devices)
