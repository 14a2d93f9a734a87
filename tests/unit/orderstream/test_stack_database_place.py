"""Where the stack's PostgreSQL cluster lives: in the tree when its OS user reaches it, else
in a directory of its own outside, linked from ``.local/pg`` and removed by ``make clean``."""

from __future__ import annotations

from pathlib import Path

import pytest

from orderstream.stack.database import (
    ClusterUnreachable,
    cluster_home,
    outside_home,
    place,
    remove,
)


class Probe:
    """A stand-in for asking the OS user whether it reaches a path; records each question."""

    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.asked: list[tuple[str, Path]] = []

    def __call__(self, user: str, path: Path) -> bool:
        self.asked.append((user, path))
        return self.answer


@pytest.fixture
def local(tmp_path: Path) -> Path:
    (tmp_path / "clone" / ".local").mkdir(parents=True)
    return tmp_path / "clone" / ".local"


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return tmp_path / "var-lib-postgresql" / "orderstream"


def initdb(home: Path) -> None:
    (home / "data").mkdir(parents=True)
    (home / "data" / "PG_VERSION").write_text("15\n")


def test_as_ourselves_the_cluster_is_in_the_tree_and_nobody_is_asked(
    local: Path, base: Path
) -> None:
    probe = Probe(False)
    assert place(local, None, probe, base) == local / "pg"
    assert probe.asked == []
    assert not base.exists()


def test_in_the_tree_when_the_os_user_reaches_it(local: Path, base: Path) -> None:
    probe = Probe(True)
    assert place(local, "postgres", probe, base) == local / "pg"
    assert probe.asked == [("postgres", local)]
    assert not base.exists()


def test_outside_when_it_does_not_and_the_link_keeps_the_choice(local: Path, base: Path) -> None:
    home = place(local, "postgres", Probe(False), base)
    assert home == outside_home(local, base)
    assert home.is_dir() and home.parent == base
    assert (local / "pg").is_symlink() and cluster_home(local) == home
    assert base.stat().st_mode & 0o777 == 0o755
    initdb(home)
    probe = Probe(True)  # even once the tree is open, the cluster stays where it is
    assert place(local, "postgres", probe, base) == home
    assert probe.asked == []
    assert (home / "data" / "PG_VERSION").exists()


def test_one_outside_directory_per_stack_directory(tmp_path: Path, base: Path) -> None:
    first, second = tmp_path / "a" / ".local", tmp_path / "b" / ".local"
    assert outside_home(first, base) == outside_home(first, base)
    assert outside_home(first, base) != outside_home(second, base)
    assert outside_home(first, base).parent == base


def test_what_a_failed_initdb_left_in_the_tree_moves_out(local: Path, base: Path) -> None:
    (local / "pg" / "data").mkdir(parents=True)  # an initdb that died: no PG_VERSION
    (local / "pg" / "run").mkdir()
    home = place(local, "postgres", Probe(False), base)
    assert home == outside_home(local, base)
    assert (local / "pg").is_symlink()


def test_a_directory_already_under_the_name_is_neither_reused_nor_removed(
    local: Path, base: Path
) -> None:
    # left by a tree at this path deleted without `make clean`, or used by one moved away
    taken = outside_home(local, base)
    initdb(taken)
    initdb(taken.with_name(taken.name + "-2"))
    home = place(local, "postgres", Probe(False), base)
    assert home == taken.with_name(taken.name + "-3")
    assert list(home.iterdir()) == []
    assert (taken / "data" / "PG_VERSION").exists()
    remove(local, base)
    assert not home.exists() and (taken / "data" / "PG_VERSION").exists()


def test_a_cluster_in_a_tree_that_closed_stops_the_stack_with_what_to_do(
    local: Path, base: Path
) -> None:
    initdb(local / "pg")
    with pytest.raises(ClusterUnreachable, match=r"cannot reach .*make clean"):
        place(local, "postgres", Probe(False), base)
    assert (local / "pg" / "data" / "PG_VERSION").exists()
    assert place(local, "postgres", Probe(True), base) == local / "pg"


def test_clean_removes_the_outside_directory_it_links_to(local: Path, base: Path) -> None:
    home = place(local, "postgres", Probe(False), base)
    initdb(home)
    other = outside_home(local.parent / "other", base)
    other.mkdir()
    remove(local, base)
    assert not home.exists()
    assert other.exists() and base.exists()


def test_clean_leaves_alone_what_is_in_the_tree_or_not_under_the_base(
    local: Path, base: Path, tmp_path: Path
) -> None:
    initdb(local / "pg")
    remove(local, base)
    assert (local / "pg" / "data" / "PG_VERSION").exists()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    second = tmp_path / "second" / ".local"
    second.mkdir(parents=True)
    (second / "pg").symlink_to(elsewhere)
    remove(second, base)
    assert elsewhere.exists()
