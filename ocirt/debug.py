"""What the library tells a person: debug lines (``--debug``) and warnings.

The library never prints: it calls ``log(text)`` or ``warn(text)``.  A
debug line goes nowhere unless the CLI has installed a sink (``enable``):
runc's ``level=debug`` records, on stderr or in ``--log``'s file.  A warning
goes to the CLI's warning sink (``on_warning``: runc's ``level=warning``
record), or, for a program using the library without one, to Python's
``logging`` ("ocirt" logger).  A child of the runtime (the init before stage
2, exec's child) must not write to its stdio, which is the container's: it
sends its debug lines to the parent over the channel instead (``Msg.DEBUG``,
see ocirt.process.channel), and the parent logs them.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

sink: "Callable[[str], None] | None" = None
warning_sink: "Callable[[str], None] | None" = None


def enable(new_sink: "Callable[[str], None]") -> None:
    global sink
    sink = new_sink


def enabled() -> bool:
    return sink is not None


def log(message: str) -> None:
    if sink is not None:
        sink(message)


def on_warning(new_sink: "Callable[[str], None]") -> None:
    global warning_sink
    warning_sink = new_sink


def warn(message: str) -> None:
    if warning_sink is not None:
        warning_sink(message)
        return
    import logging

    logging.getLogger("ocirt").warning("%s", message)
