"""Man pages and bash completion, generated from the tables the CLI parses.

One source: ``ocirt.cli.COMMANDS`` (names and one-line summaries),
``GLOBAL_FLAGS``, and each command module's ``USAGE`` and ``FLAGS`` -- the
same objects ``ocirt --help`` prints and ``ocirt.cli.flags.parse`` reads, so
a flag cannot be documented and not parsed, or the reverse.  The package
build (``setup.py``'s ``build_man``) writes them under ``share/``, which pip
installs beside ``bin/``: man-db finds ``share/man`` from ``PATH``, and
bash-completion 2.9+ looks in ``../share/bash-completion/completions``
relative to the command.  By hand::

    python -m ocirt.cli.manpages DIRECTORY     # DIRECTORY/man/man8/*.8, ...
"""

from __future__ import annotations

import os
import sys

from ocirt import cli
from ocirt.cli.flags import Flag

SECTION = "8"  # system administration commands, as runc's pages
COMPLETION = "bash-completion/completions/ocirt"
# Commands that take a container id as their first argument (completion offers
# `ocirt list -q`); `create` and `run` name a new one.
TAKES_ID = frozenset(
    {"delete", "events", "exec", "kill", "pause", "ps", "resume", "start", "state", "trace",
     "update"}
)  # fmt: skip


def command_module(name: str) -> object:
    return __import__(f"ocirt.cli.{name}", fromlist=["FLAGS"])


def output_names() -> list[str]:
    """The files write_all writes, relative to its directory."""
    pages = ["ocirt", *(f"ocirt-{name}" for name in cli.COMMANDS)]
    return [f"man/man{SECTION}/{page}.{SECTION}" for page in pages] + [COMPLETION]


def write_all(directory: str) -> list[str]:
    """Write every man page and the completion under DIRECTORY; their paths."""
    contents = {f"man/man{SECTION}/ocirt.{SECTION}": overview_page()}
    for name in cli.COMMANDS:
        contents[f"man/man{SECTION}/ocirt-{name}.{SECTION}"] = command_page(name)
    contents[COMPLETION] = bash_completion()
    written = []
    for relative, text in contents.items():
        path = os.path.join(directory, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        written.append(path)
    return written


# -- roff ------------------------------------------------------------------------------
def _roff(text: str) -> str:
    """TEXT safe in a roff line: backslashes, dashes, and a leading dot or quote."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text[:1] in (".", "'") else text


def _flag_items(flags: tuple[Flag, ...]) -> list[str]:
    lines = []
    for flag in flags:
        spelled = ", ".join(("--" if len(n) > 1 else "-") + n for n in flag.names)
        if flag.takes_value:
            spelled += f" {flag.value_name}"
        default = f" (default: {flag.default})" if flag.takes_value and flag.default else ""
        lines += [".TP", f"\\fB{_roff(spelled)}\\fR", _roff(flag.help + default)]
    return lines


def _header(page: str, summary: str) -> list[str]:
    return [
        f'.TH "{page.upper()}" "{SECTION}" "" "ocirt {cli.VERSION}" "ocirt manual"',
        ".SH NAME",
        f"{_roff(page)} \\- {_roff(summary)}",
    ]


def overview_page() -> str:
    lines = [
        *_header("ocirt", "Open Container Initiative runtime, in Python"),
        ".SH SYNOPSIS",
        "\\fBocirt\\fR [\\fIglobal options\\fR] \\fIcommand\\fR [\\fIcommand options\\fR]"
        " [\\fIarguments\\fR...]",
        ".SH DESCRIPTION",
        _roff(
            "ocirt is a low-level OCI runtime that stands in for runc: the same command"
            " line, state, exit codes and logs, so container managers (podman, containerd,"
            " dockerd) can drive it."
        ),
        ".SH COMMANDS",
    ]
    for name, summary in cli.COMMANDS.items():
        lines += [
            ".TP",
            f"\\fB{_roff(name)}\\fR",
            f"{_roff(summary)} (see \\fBocirt\\-{name}\\fR(8))",
        ]
    lines += [".SH GLOBAL OPTIONS", *_flag_items(cli.GLOBAL_FLAGS)]
    lines += [".SH SEE ALSO", ", ".join(f"\\fBocirt\\-{n}\\fR(8)" for n in cli.COMMANDS)]
    return "\n".join(lines) + "\n"


def command_page(name: str) -> str:
    module = command_module(name)
    usage = getattr(module, "USAGE", "")
    lines = [
        *_header(f"ocirt-{name}", cli.COMMANDS[name]),
        ".SH SYNOPSIS",
        f"\\fBocirt {_roff(name)}\\fR {_roff(usage)}".rstrip(),
        ".SH OPTIONS",
        *_flag_items(module.FLAGS),  # type: ignore[attr-defined]
        ".SH SEE ALSO",
        "\\fBocirt\\fR(8)",
    ]
    return "\n".join(lines) + "\n"


# -- bash completion ----------------------------------------------------------------
def _spellings(flags: tuple[Flag, ...]) -> str:
    return " ".join(("--" if len(n) > 1 else "-") + n for f in flags for n in f.names)


def _valued(flags: tuple[Flag, ...]) -> list[str]:
    return [("--" if len(n) > 1 else "-") + n for f in flags if f.takes_value for n in f.names]


def bash_completion() -> str:
    """`complete -F _ocirt ocirt`: commands, their flags, container ids (`ocirt list -q`)."""
    valued = set(_valued(cli.GLOBAL_FLAGS))
    cases = []
    for name in cli.COMMANDS:
        flags = command_module(name).FLAGS  # type: ignore[attr-defined]
        valued |= set(_valued(flags))
        ids = "1" if name in TAKES_ID else "0"
        cases.append(f'        {name}) flags="{_spellings(flags)}"; ids={ids} ;;')
    renamed = [(alias, target) for alias, target in cli.ALIASES.items() if alias != target]
    aliases = "".join(f"        {alias}) command={target} ;;\n" for alias, target in renamed)
    return f"""# bash completion for ocirt (from ocirt.cli's tables: ocirt/cli/manpages.py)
_ocirt_ids() {{
    local root=() i
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${{COMP_WORDS[i]}} in
            --root=*) root=(--root "${{COMP_WORDS[i]#--root=}}") ;;
            --root) root=(--root "${{COMP_WORDS[i + 1]}}") ;;
        esac
    done
    "${{COMP_WORDS[0]}}" "${{root[@]}}" list -q 2>/dev/null
}}

_ocirt() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD - 1]}}
    local valued=" {" ".join(sorted(valued))} "
    local command="" position=0 i word
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${{COMP_WORDS[i]}}
        if [[ $word == -* ]]; then
            [[ $word != *=* && $valued == *" $word "* ]] && ((i++))
        elif [[ -z $command ]]; then
            command=$word
        else
            ((position++))
        fi
    done
    case $prev in
        --bundle | -b | --log | --pid-file | --process | -p | --console-socket | --cwd | \\
            --root | --criu | --output | -o) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    esac
    if [[ -z $command ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "{_spellings(cli.GLOBAL_FLAGS)}" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "{" ".join(cli.COMMANDS)} help" -- "$cur"))
        fi
        return
    fi
    case $command in
{aliases}    esac
    local flags="" ids=0
    case $command in
{chr(10).join(cases)}
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$flags" -- "$cur"))
    elif ((ids && position == 0)); then
        COMPREPLY=($(compgen -W "$(_ocirt_ids)" -- "$cur"))
    fi
}}
complete -F _ocirt ocirt
"""


if __name__ == "__main__":
    for written in write_all(sys.argv[1] if len(sys.argv) > 1 else "."):
        print(written)
