"""The contract with faust-streaming's (mode's, aiokafka's) internals (streams.faustinternals).

Each private attribute or method the module relies on still exists on the installed
class, each upstream method it copies is still the text it was copied from, and a worker
refuses another faust-streaming. An upgrade fails here, by name, before it fails a worker.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import re
from typing import Any

import pytest

from orderstream.core.settings import Settings
from streams import faustinternals
from streams.app import new_app
from streams.exceptions import UnsupportedFaustVersion
from streams.faustinternals import (
    COPIED_UPSTREAM,
    PRIVATE_INTERNALS,
    SUPPORTED_FAUST,
    CopiedUpstream,
    PrivateInternal,
    require_supported_faust,
)


def resolve(path: str) -> Any:
    """``module`` or ``module:Qualified.name`` (a property resolves to its getter)."""
    module_name, _, qualname = path.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split(".") if qualname else ():
        obj = inspect.getattr_static(obj, part)
    return obj.fget if isinstance(obj, property) else obj


def source_of(owner: Any, method: str) -> str:
    return inspect.getsource(inspect.getattr_static(owner, method))


@pytest.mark.parametrize("internal", PRIVATE_INTERNALS, ids=lambda i: f"{i.owner}.{i.name}")
def test_each_private_internal_relied_on_exists(internal: PrivateInternal) -> None:
    owner = resolve(internal.owner)
    if internal.assigned_in is None:
        assert hasattr(owner, internal.name), f"{internal.owner} has no {internal.name}"
    else:
        assigned = re.compile(rf"\bself\.{re.escape(internal.name)}\s*(:[^=\n]+)?=[^=]")
        assert assigned.search(source_of(owner, internal.assigned_in)), (
            f"{internal.owner}.{internal.assigned_in} no longer assigns self.{internal.name}"
        )
    if internal.read_in is not None:
        assert f"self.{internal.name}" in source_of(owner, internal.read_in), (
            f"{internal.owner}.{internal.read_in} no longer reads self.{internal.name}"
        )


@pytest.mark.parametrize("copied", COPIED_UPSTREAM, ids=lambda c: c.upstream)
def test_each_copied_upstream_method_is_unchanged(copied: CopiedUpstream) -> None:
    text = inspect.getsource(resolve(copied.upstream))
    assert hashlib.sha256(text.encode()).hexdigest() == copied.sha256, (
        f"{copied.upstream} changed upstream: review its copy, {copied.copy}, then update "
        f"the hash in streams.faustinternals.COPIED_UPSTREAM"
    )


def test_every_copy_named_exists_in_the_module() -> None:
    for copied in COPIED_UPSTREAM:
        assert resolve(f"streams.faustinternals:{copied.copy}") is not None


def test_the_overridden_private_methods_are_the_ones_listed() -> None:
    # every private method a class here defines overrides one listed as relied on
    listed = {internal.name for internal in PRIVATE_INTERNALS}
    for _, cls in inspect.getmembers(faustinternals, inspect.isclass):
        if cls.__module__ != faustinternals.__name__:
            continue
        for name, value in vars(cls).items():
            method = inspect.isfunction(value) or isinstance(value, property)
            if method and name.startswith("_") and not name.startswith("__"):
                assert name in listed, f"{cls.__name__}.{name} is not in PRIVATE_INTERNALS"


def test_the_installed_faust_is_the_supported_one() -> None:
    assert faustinternals.installed_faust_version() == SUPPORTED_FAUST
    require_supported_faust()


@pytest.mark.parametrize("installed", ["0.15.4", "0.16.0", "0.11.0", None])
def test_a_worker_refuses_another_faust(
    monkeypatch: pytest.MonkeyPatch, installed: str | None
) -> None:
    monkeypatch.setattr(faustinternals, "installed_faust_version", lambda: installed)
    with pytest.raises(UnsupportedFaustVersion) as refused:
        require_supported_faust()
    assert refused.value.installed == installed
    assert refused.value.supported == SUPPORTED_FAUST
    assert SUPPORTED_FAUST in str(refused.value)
    if installed is not None:
        assert installed in str(refused.value)


def test_the_app_factory_refuses_another_faust(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faustinternals, "installed_faust_version", lambda: "0.15.4")
    with pytest.raises(UnsupportedFaustVersion):
        new_app(Settings.from_env(), store="memory://")
