"""Debug lines (``--debug``): what each step did, for a person reading them.

The library never prints: it calls ``log(text)``, which goes nowhere unless
the CLI has installed a sink (``enable``): runc's ``level=debug`` records, on
stderr or in ``--log``'s file.  A child of the runtime (the init before stage
2, exec's child) must not write to its stdio, which is the container's: it
sends its lines to the parent over the channel instead (``Msg.DEBUG``, see
ocirt.process.channel), and the parent logs them.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

sink: "Callable[[str], None] | None" = None


def enable(new_sink: "Callable[[str], None]") -> None:
    global sink
    sink = new_sink


def enabled() -> bool:
    return sink is not None


def log(message: str) -> None:
    if sink is not None:
        sink(message)
