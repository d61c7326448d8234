"""ocirt delete [--force] <container-id>"""

from __future__ import annotations

from ocirt.cli import output
from ocirt.cli._common import HELP, exactly_one_id
from ocirt.cli.flags import Flag
from ocirt.container import Container, delete_abandoned
from ocirt.errors import ContainerNotExist

USAGE = "[command options] <container-id>"
FLAGS = (
    Flag(
        ("force", "f"), help="Forcibly deletes the container if it is still running (uses SIGKILL)"
    ),
    HELP,
)


def run(ctx, opts: dict, args: list[str]) -> int:
    container_id = exactly_one_id("delete", args)
    try:
        c = Container.load(ctx.root, container_id)
    except ContainerNotExist:
        if opts["force"]:
            delete_abandoned(ctx.root, container_id)  # what a create killed midway left
            return 0  # containerd deletes twice: the second must succeed
        raise
    with c:
        for warning in c.delete(force=opts["force"]):
            output.warn(ctx, warning)
    return 0
