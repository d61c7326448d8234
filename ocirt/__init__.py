"""ocirt: an OCI container runtime (runc's command line) and the library under it.

The library is for any Python program that runs containers: a test harness,
an orchestrator, a CI system.  It never prints, never exits and reads no
argv; failures are ``ocirt.errors.OcirtError`` (and its subclasses)::

    from ocirt import Container, CreateOptions, ExecOptions, Resources

    code = Container.run("/run/ocirt", "job", CreateOptions(bundle="/srv/job"))

    c = Container.create("/run/ocirt", "web", CreateOptions(bundle="/srv/web"))
    c.start()
    with c.exec(ExecOptions(args=["cat", "/etc/hostname"])) as p:
        p.wait()
    c.update(Resources(memory_limit=64 << 20))
    c.delete(force=True)

docs/api.md is the tour.  The names below are loaded when first used
(PEP 562): the package itself is imported by every ``ocirt`` command, and
the short ones (state, start, kill, delete) load almost nothing.
"""

# public name -> the module that defines it
_EXPORTS = {
    "Container": "ocirt.container",
    "ExecProcess": "ocirt.foreground",
    "CreateOptions": "ocirt.options",
    "ExecOptions": "ocirt.options",
    "Resources": "ocirt.options",
    "OcirtError": "ocirt.errors",
    "ConfigError": "ocirt.errors",
    "ContainerExists": "ocirt.errors",
    "ContainerNotExist": "ocirt.errors",
    "ContainerNotRunning": "ocirt.errors",
    "ExecError": "ocirt.errors",
}
__all__ = [
    "ConfigError",
    "Container",
    "ContainerExists",
    "ContainerNotExist",
    "ContainerNotRunning",
    "CreateOptions",
    "ExecError",
    "ExecOptions",
    "ExecProcess",
    "OcirtError",
    "Resources",
]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ocirt.container import Container
    from ocirt.errors import (
        ConfigError,
        ContainerExists,
        ContainerNotExist,
        ContainerNotRunning,
        ExecError,
        OcirtError,
    )
    from ocirt.foreground import ExecProcess
    from ocirt.options import CreateOptions, ExecOptions, Resources


def __getattr__(name: str) -> object:
    module_name = _EXPORTS.get(name)
    if module_name is None:  # a submodule: `from ocirt import cli` imports it then
        raise AttributeError(f"module 'ocirt' has no attribute {name!r}")
    module = __import__(module_name, fromlist=[name])
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
