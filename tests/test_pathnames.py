"""ocirt.linux.pathnames answers as os.path does (create's modules use it instead)."""

from __future__ import annotations

import itertools
import os
import posixpath
from pathlib import Path

import pytest

from ocirt.linux import pathnames

PIECES = ["", "/", "//", "///", ".", "..", "a", "b/", "/c", "../", "./d/", "e//f"]
PATHS = sorted({"".join(p) for n in range(4) for p in itertools.product(PIECES, repeat=n)})


def test_lexical_functions_match_posixpath() -> None:
    for path in PATHS:
        assert pathnames.normpath(path) == posixpath.normpath(path), path
        assert pathnames.split(path) == posixpath.split(path), path
        assert pathnames.dirname(path) == posixpath.dirname(path), path
        assert pathnames.basename(path) == posixpath.basename(path), path
        assert pathnames.isabs(path) == posixpath.isabs(path), path
        assert pathnames.abspath(path) == posixpath.abspath(path), path


@pytest.mark.parametrize("first", PIECES)
def test_join_and_relpath_match_posixpath(first: str) -> None:
    for second in PATHS[::7]:
        assert pathnames.join(first, second) == posixpath.join(first, second)
        assert pathnames.join(second, first, second) == posixpath.join(second, first, second)
        if second:
            assert pathnames.relpath(second, first) == posixpath.relpath(second, first)
    with pytest.raises(ValueError):
        pathnames.relpath("", first)


def test_file_tests_match_os_path(tmp_path: Path) -> None:
    (tmp_path / "file").touch()
    (tmp_path / "dir").mkdir()
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "to-dir").symlink_to(tmp_path / "dir")
    names = ["file", "dir", "dangling", "to-dir", "nowhere", "file/below", "bad\0name"]
    for name in names:
        path = str(tmp_path / name) if "\0" not in name else "/tmp/bad\0name"
        assert pathnames.exists(path) == os.path.exists(path), name
        assert pathnames.lexists(path) == os.path.lexists(path), name
        assert pathnames.isdir(path) == os.path.isdir(path), name


def test_makedirs_as_os_makedirs_exist_ok(tmp_path: Path) -> None:
    leaf = tmp_path / "a" / "b" / "c"
    pathnames.makedirs(str(leaf), 0o700)
    assert (leaf.stat().st_mode & 0o777, (tmp_path / "a").stat().st_mode & 0o777) == (
        0o700,
        0o777 & ~_umask(),
    )
    pathnames.makedirs(str(leaf), 0o700)  # there already: fine
    (tmp_path / "file").touch()
    with pytest.raises(FileExistsError):
        pathnames.makedirs(str(tmp_path / "file"))
    with pytest.raises(NotADirectoryError):
        pathnames.makedirs(str(tmp_path / "file" / "below"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
