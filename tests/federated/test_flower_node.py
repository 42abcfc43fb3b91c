"""The Flower node's cache of built parts: one model per run config, one dataset per client,
rebuilt for another config (no simulation here: ``node.parts`` is called directly)."""

from __future__ import annotations

import pytest

pytest.importorskip("flwr.app")

from fedsb.federated.flower import node  # noqa: E402
from fedsb.federated.flower.messages import config_text  # noqa: E402
from fedsb.federated.task import build_task  # noqa: E402
from fedsb.reporter import SilentReporter  # noqa: E402


def test_parts_are_built_once_per_config_and_client(workspace):
    cfg = workspace.config()
    text = config_text(cfg)
    got_cfg, model, data0 = node.parts(text, 0, workspace.cache)
    assert got_cfg == cfg
    again = node.parts(text, 0, workspace.cache)
    assert again[1] is model and again[2] is data0  # cached, not rebuilt
    _, model1, data1 = node.parts(text, 1, workspace.cache)
    assert model1 is model and data1 is not data0
    # the node's data are the server's client data (training split)
    task = build_task(cfg, workspace.cache, SilentReporter())
    assert data1[0].labels.tolist() == task.units[1].labels.tolist()
    other = node.parts(config_text(workspace.config("seed=7")), 0, workspace.cache)
    assert other[0].seed == 7 and other[1] is not model  # another run: built again
