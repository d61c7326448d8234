"""The library API (``from ocirt import Container, ...``): its names, its layers,
each call against real containers, and docs/api.md's examples run as written."""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
API_DOC = REPO / "docs" / "api.md"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")


def unique(tag: str) -> str:
    """Container ids name their cgroups (relative paths): unique per run."""
    return f"ocirt-test-api-{tag}-{uuid.uuid4().hex[:8]}"


# -- the names and the layers -------------------------------------------------------
def test_public_names() -> None:
    import ocirt
    from ocirt import Container, CreateOptions, ExecOptions, ExecProcess, OcirtError, Resources
    from ocirt.errors import CgroupError, ExecError

    assert sorted(ocirt.__all__) == sorted(set(ocirt.__all__))
    for name in ocirt.__all__:
        assert getattr(ocirt, name).__module__.startswith("ocirt."), name
    assert ocirt.__doc__ and "docs/api.md" in ocirt.__doc__
    methods = "create load list run start exec kill pause resume update stats events processes"
    for method in [*methods.split(), "state", "delete"]:
        assert getattr(Container, method).__doc__, method
    assert issubclass(ExecError, OcirtError) and issubclass(CgroupError, OcirtError)
    assert CreateOptions(bundle="/b").replace(pid_file="/p").pid_file == "/p"
    assert ExecOptions(args=["true"]).stdio == (-1, -1, -1)
    assert ExecProcess.wait.__doc__
    assert Resources(memory_limit=1 << 20, cpu_shares=512).to_dict() == {
        "memory": {"limit": 1 << 20},
        "cpu": {"shares": 512},
    }
    with pytest.raises(TypeError):
        Resources(memroy_limit=1)


def test_package_import_loads_no_api_module() -> None:
    """`import ocirt` (every command does) loads none of the names it exports:
    they come on first use (PEP 562), so the short commands stay short."""
    code = (
        f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
        "import ocirt\n"
        "print(sorted(m for m in sys.modules if m.startswith('ocirt')))\n"
        "ocirt.Container\n"
        "print('ocirt.container' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True)
    assert out.stdout.split("\n")[:2] == ["['ocirt']", "True"], out.stderr


FORBIDDEN_BELOW_CLI = ("ocirt.process", "ocirt.linux", "ocirt.cgroups")


def _imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every import in PATH, at any depth (lazy imports too)."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
            for alias in node.names:  # `from ocirt import cgroups`
                yield node.lineno, f"{node.module}.{alias.name}"


def test_cli_imports_only_the_api() -> None:
    """ocirt/cli/ is flags -> one API call -> runc's output: it never reaches
    past the API into the layers below it (docs/architecture.md, "Layers").
    Checked to fail: with cli/pause.py importing ocirt.cgroups as before, it
    names that line."""
    offenders = [
        f"{path.relative_to(REPO)}:{line}: {module}"
        for path in sorted((REPO / "ocirt" / "cli").glob("*.py"))
        for line, module in _imported_modules(path)
        if any(module == f or module.startswith(f + ".") for f in FORBIDDEN_BELOW_CLI)
    ]
    assert offenders == []


def test_import_checker_sees_lazy_and_from_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from ocirt import cgroups\n"
        "def f():\n"
        "    from ocirt.process.exec import start\n"
        "    import ocirt.linux.tty\n"
    )
    modules = [m for _, m in _imported_modules(sample)]
    assert "ocirt.cgroups" in modules
    assert "ocirt.process.exec" in modules
    assert "ocirt.linux.tty" in modules


# -- the calls, against real containers ----------------------------------------------
@pytest.fixture
def api_bundle(bundle):
    """bundle() with a cgroupsPath of our own (an "ocirt-test" name)."""

    def make(*args: str, patch: dict | None = None) -> Path:
        merged = {"linux": {"cgroupsPath": unique("cg")}}
        for key, value in (patch or {}).items():
            merged.setdefault(key, {}).update(value)
        return bundle(*args, patch=merged)

    return make


@needs_root
def test_lifecycle_through_the_api(tmp_root: Path, api_bundle) -> None:
    from ocirt import Container, ContainerNotExist, CreateOptions, ExecOptions, Resources
    from ocirt.errors import ContainerNotRunning, OcirtError

    root, cid = str(tmp_root), unique("life")
    c = Container.create(root, cid, CreateOptions(bundle=str(api_bundle("sleep", "600"))))
    try:
        assert c.status == "created" and c.state()["pid"] == c.pid
        assert [s["id"] for s in Container.list(root)] == [cid]
        assert c.start() == []
        assert c.status == "running"
        assert c.processes() == [c.pid]
        c.pause()
        assert c.status == "paused"
        with pytest.raises(ContainerNotRunning):
            c.pause()
        c.resume()
        with pytest.raises(OcirtError, match="container not paused"):
            c.resume()
        c.update(Resources(pids_limit=7))
        assert c.stats()["pids"]["limit"] == 7
        c.update({"pids": {"limit": 9}})  # a runtime-spec object works too
        assert c.stats()["pids"]["limit"] == 9

        r, w = os.pipe()
        with c.exec(ExecOptions(args=["sh", "-c", "echo $$; exec sleep 600"], stdout=w)) as p:
            os.close(w)
            with os.fdopen(r) as out:
                first = out.readline()
            assert first.strip().isdigit()  # its pid in the container's namespace
            assert p.pid in c.processes()
            assert p.pidfd >= 0
            p.send_signal(signal.SIGTERM)
            assert p.wait() == 128 + signal.SIGTERM
            assert p.returncode == 143
        c.kill(signal.SIGKILL)
        assert c.wait() == 137
        assert c.status == "stopped"
        with pytest.raises(ContainerNotRunning):
            c.update(Resources(pids_limit=5))
        with pytest.raises(OcirtError, match="is not running"):
            c.stats()
        assert c.delete() == []
        with pytest.raises(ContainerNotExist):
            Container.load(root, cid)
    finally:
        c.close()


@needs_root
def test_exec_stdio_reaches_the_process_and_nothing_else(tmp_root: Path, api_bundle) -> None:
    """The fds named as stdin/stdout become the process's 0 and 1, and only they:
    the copies exec made of them above the preserved fds are closed (a leaked
    one would show in /proc/self/fd, and keep a pipe open for the container).
    Checked to fail: with exec's child dup2()ing the copies to 10-12 instead
    of 0-2, the output went elsewhere and the test saw []."""
    from ocirt import Container, CreateOptions, ExecOptions

    root, cid = str(tmp_root), unique("stdio")
    c = Container.create(root, cid, CreateOptions(bundle=str(api_bundle("sleep", "600"))))
    try:
        c.start()
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        os.write(in_w, b"from the caller")
        os.close(in_w)
        script = "cat; echo; ls /proc/self/fd"
        opts = ExecOptions(args=["sh", "-c", script], stdin=in_r, stdout=out_w)
        with c.exec(opts) as p:
            os.close(in_r)
            os.close(out_w)
            with os.fdopen(out_r) as out:
                lines = out.read().splitlines()
            assert p.wait() == 0
        # ls's own fds: 0-2 and the directory it reads (3).
        assert lines == ["from the caller", "0", "1", "2", "3"], lines
    finally:
        c.delete(force=True)
        c.wait()


@needs_root
def test_run_returns_the_exit_status_and_deletes(tmp_root: Path, api_bundle) -> None:
    from ocirt import Container, CreateOptions

    root, cid = str(tmp_root), unique("run")
    opts = CreateOptions(bundle=str(api_bundle("sh", "-c", "exit 42")))
    assert Container.run(root, cid, opts) == 42
    assert Container.list(root) == []
    assert Container.run(root, cid, opts, keep=True) == 42
    with Container.load(root, cid) as kept:
        assert kept.status == "stopped"
        kept.delete()


@needs_root
def test_exec_errors_leave_nothing_running(tmp_root: Path, api_bundle) -> None:
    from ocirt import Container, CreateOptions, ExecError

    root, cid = str(tmp_root), unique("exec")
    c = Container.create(root, cid, CreateOptions(bundle=str(api_bundle("sleep", "600"))))
    try:
        c.start()
        before = sorted(c.processes())
        missing = 'exec: "/no/such": stat /no/such: no such file or directory'
        with pytest.raises(ExecError, match=missing):
            c.exec(["/no/such"])
        with pytest.raises(ExecError, match="cannot exec in a paused container"):
            c.pause()
            try:
                c.exec(["true"])
            finally:
                c.resume()
        assert sorted(c.processes()) == before
    finally:
        c.delete(force=True)
        c.wait()


@needs_root
def test_events_report_stats_then_end_with_the_container(tmp_root: Path, api_bundle) -> None:
    from ocirt import Container, CreateOptions

    root, cid = str(tmp_root), unique("events")
    c = Container.create(root, cid, CreateOptions(bundle=str(api_bundle("sleep", "600"))))
    try:
        c.start()
        events = c.events(interval=0.2)
        first = next(events)
        assert (first["type"], first["id"]) == ("stats", cid) and "memory" in first["data"]
        c.kill(signal.SIGKILL)
        c.wait()
        assert all(e["type"] == "stats" for e in events)  # and the iterator ends
    finally:
        c.delete(force=True)


# -- docs/api.md's examples ----------------------------------------------------------
_EXAMPLE = re.compile(
    r"<!-- api-example: (?P<meta>\{.*?\}) -->\n```python\n(?P<code>.*?)```\n+"
    r"```text\n(?P<output>.*?)```",
    re.DOTALL,
)


def _doc_examples() -> list[tuple[str, dict, str, str]]:
    text = API_DOC.read_text()
    examples = []
    for match in _EXAMPLE.finditer(text):
        heading = [h for h in re.findall(r"^## (.+)$", text[: match.start()], re.M)][-1]
        meta = json.loads(match["meta"])
        examples.append((heading, meta, match["code"], match["output"]))
    return examples


def test_doc_has_the_issue_examples() -> None:
    headings = [h for h, *_ in _doc_examples()]
    for wanted in ("Run a container", "Create, exec into it", "memory limit", "OOM"):
        assert any(wanted in h for h in headings), (wanted, headings)


@needs_root
@pytest.mark.parametrize("example", _doc_examples(), ids=lambda e: e[0])
def test_doc_example(example, tmp_root: Path, api_bundle) -> None:
    _heading, meta, code, expected = example
    if "OOM" in _heading and os.path.exists("/proc/swaps"):
        with open("/proc/swaps") as f:
            if len(f.read().splitlines()) > 1 and not _swap_accounting():
                pytest.skip("swap without swap accounting: the hog would swap, not be killed")
    b = api_bundle(*meta["args"])
    env = {**os.environ, "OCIRT_ROOT": str(tmp_root), "OCIRT_BUNDLE": str(b)}
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected, result.stderr


def _swap_accounting() -> bool:
    return os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes") or any(
        p.name == "memory.swap.max" for p in Path("/sys/fs/cgroup").glob("*/memory.swap.max")
    )
