"""ocirt run [options] <container-id>: create, start, wait, delete (``Container.run``)."""

from __future__ import annotations

from ocirt.cli._common import exactly_one_id
from ocirt.cli.create import FLAGS as CREATE_FLAGS
from ocirt.cli.create import create_options
from ocirt.cli.flags import Flag

USAGE = "[command options] <container-id>"
FLAGS = (
    *CREATE_FLAGS,
    Flag(("detach", "d"), help="detach from the container's process"),
    Flag(("keep",), help="do not delete the container after it exits"),
    Flag(
        ("no-subreaper",),
        help="disable the use of the subreaper used to reap reparented processes",
    ),
)


def run(ctx, opts: dict, args: list[str]) -> int:
    from ocirt.container import Container

    container_id = exactly_one_id("run", args)
    return Container.run(
        ctx.root,
        container_id,
        create_options(ctx, opts),
        detach=opts["detach"],
        keep=opts["keep"],
        subreaper=not opts["no_subreaper"],
        # Everything a terminal or a manager sends us goes on to the container.
        forward_signals=True,
    )
