"""The ``Engine`` protocol: both engines implement it, with the protocol's exact signatures, and
``federate`` and the temperature fit are typed with it."""

from __future__ import annotations

import inspect

import pytest

from fedsb.federated.calibrate import fit_global_temperature
from fedsb.federated.engine_local import LocalEngine
from fedsb.federated.engines import Engine
from fedsb.federated.rounds import run_round
from fedsb.federated.server import federate, finish
from fedsb.federated.task import build_task
from fedsb.reporter import SilentReporter

METHODS = ("init_round", "train", "calibration_stats", "close")


def _signature(cls: type, name: str) -> list[tuple[str, object]]:
    sig = inspect.signature(getattr(cls, name))
    return [(p.name, p.annotation) for p in sig.parameters.values()] + [
        ("return", sig.return_annotation)
    ]


def _engine_classes() -> list[type]:
    pytest.importorskip("flwr.serverapp")
    from fedsb.federated.flower.engine import GridEngine

    return [LocalEngine, GridEngine]


def test_the_protocol_lists_the_four_methods():
    assert all(callable(getattr(Engine, name)) for name in METHODS)
    assert _signature(Engine, "train") == [
        ("self", inspect.Parameter.empty),
        ("server_round", "int"),
        ("ids", "list[int]"),
        ("global_state", "State"),
        ("personal", "Mapping[int, State] | None"),
        ("return", "list[ClientResult]"),
    ]


@pytest.mark.parametrize("name", METHODS)
def test_both_engines_have_the_protocols_signatures(name):
    for cls in _engine_classes():
        assert _signature(cls, name) == _signature(Engine, name), (cls.__name__, name)


def test_engine_instances_satisfy_the_protocol_and_other_objects_do_not(workspace):
    cfg = workspace.config()
    local = LocalEngine(build_task(cfg, workspace.cache, SilentReporter()), cfg)
    try:
        assert isinstance(local, Engine)
    finally:
        local.close()
    pytest.importorskip("flwr.serverapp")
    from fedsb.federated.flower.engine import GridEngine

    assert isinstance(GridEngine(None, None, cfg, workspace.cache), Engine)  # no grid call yet

    class TrainsOnly:
        def train(self, server_round, ids, global_state):
            return []

    assert not isinstance(TrainsOnly(), Engine)


def test_the_server_loop_and_the_temperature_fit_take_an_engine():
    """Annotated ``Engine`` (imported for typing only: engines imports the server loop)."""
    for fn in (federate, run_round, finish, fit_global_temperature):
        assert inspect.signature(fn).parameters["engine"].annotation == "Engine", fn.__name__
