"""Device rules: runc's spec conversion and the v1 kernel semantics (an emulator).

Both drivers use it: v1 writes the emulated result to devices.allow/deny,
v2 compiles it into an eBPF program (``ocirt.cgroups.devices_bpf``).  Kept
apart from that module so that the v1 create path does not import the
program's assembler (``struct``, ``os``).
"""

from __future__ import annotations

from ocirt.cgroups import CgroupError

TYPE_CHECKING = False  # typing costs ~2 ms to import: annotations only
if TYPE_CHECKING:
    from typing import Any

WILDCARD = None
_ACCESS_ORDER = "rwm"


class Rule:
    """One device rule; major/minor None mean "any"."""

    __slots__ = ("access", "allow", "major", "minor", "type")

    def __init__(
        self, dtype: str, major: int | None, minor: int | None, access: str, allow: bool
    ) -> None:
        self.type = dtype  # "a", "b" or "c"
        self.major = major
        self.minor = minor
        self.access = access  # a subset of "rwm", in that order
        self.allow = allow

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rule) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"Rule({'allow' if self.allow else 'deny'} {self.v1_string()})"

    def _key(self) -> tuple:
        return (self.type, self.major, self.minor, self.access, self.allow)

    def v1_string(self) -> str:
        """The devices.allow/deny line: "c 1:3 rwm"."""
        major = "*" if self.major is None else str(self.major)
        minor = "*" if self.minor is None else str(self.minor)
        return f"{self.type} {major}:{minor} {self.access}"


def _normal_access(access: str) -> str:
    return "".join(c for c in _ACCESS_ORDER if c in access)


def rules_from_spec(devices: list[dict[str, Any]]) -> list[Rule]:
    """linux.resources.devices -> rules (runc specconv: type "a", wildcards by default)."""
    rules = []
    for i, d in enumerate(devices):
        # Letters but r, w, m are ignored, as runc (validation warns of them).
        access = _normal_access(d.get("access") or "")
        if not access:
            raise CgroupError(f"device access at {i} field cannot be empty")
        dtype = d.get("type") or "a"
        if dtype == "u":  # unbuffered character device: a character device
            dtype = "c"
        if dtype == "p":  # FIFOs are not subject to the device cgroup
            continue
        if dtype not in ("a", "b", "c"):
            raise CgroupError(f"invalid device type {dtype!r} at {i}")
        major, minor = d.get("major"), d.get("minor")
        rules.append(
            Rule(
                dtype,
                None if major is None or major < 0 else int(major),
                None if minor is None or minor < 0 else int(minor),
                access,
                bool(d.get("allow")),
            )
        )
    return rules


class Emulator:
    """The v1 device cgroup's state: a default verdict plus exceptions.

    Starts as "deny all" (runc's zero value).  "a" resets to a default; a
    rule with the default's verdict removes access from the exact exception;
    any other rule adds access to an exception (the kernel's rules).
    """

    def __init__(self, default_allow: bool = False) -> None:
        self.default_allow = default_allow
        self._exceptions: dict[tuple[str, int | None, int | None], set[str]] = {}

    @classmethod
    def from_rules(cls, rules: list[Rule]) -> Emulator:
        emu = cls()
        for rule in rules:
            emu.apply(rule)
        return emu

    @classmethod
    def from_v1_list(cls, text: str) -> Emulator:
        """devices.list: "a *:* rwm" when all is allowed, else the allowed exceptions."""
        lines = [line.split() for line in text.splitlines() if line.strip()]
        if any(fields[0] == "a" for fields in lines):
            return cls(default_allow=True)
        emu = cls()
        for dtype, numbers, access in lines:
            major, _, minor = numbers.partition(":")
            emu.apply(
                Rule(
                    dtype,
                    None if major == "*" else int(major),
                    None if minor == "*" else int(minor),
                    access,
                    True,
                )
            )
        return emu

    def apply(self, rule: Rule) -> None:
        if rule.type == "a":
            self.default_allow = rule.allow
            self._exceptions.clear()
            return
        key = (rule.type, rule.major, rule.minor)
        if rule.allow == self.default_allow:
            remaining = self._exceptions.get(key, set()) - set(rule.access)
            if remaining:
                self._exceptions[key] = remaining
            else:
                self._exceptions.pop(key, None)
        else:
            self._exceptions.setdefault(key, set()).update(rule.access)

    def exceptions(self) -> list[Rule]:
        """In the order they were made, as the kernel keeps them (devices.list
        lists v1 exceptions in the order written: the config's order)."""
        return [
            Rule(t, major, minor, _normal_access("".join(access)), not self.default_allow)
            for (t, major, minor), access in self._exceptions.items()
        ]

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Emulator)
            and self.default_allow == other.default_allow
            and self._exceptions == other._exceptions
        )

    __hash__ = None  # type: ignore[assignment]
