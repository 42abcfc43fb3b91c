"""The Flower node's cache of built parts: one model per run config, one dataset per client,
rebuilt for another config (no simulation here: ``node.parts`` is called directly); a node of a
simulation on the user's files holds the server's client of them, one with a data-path its own
files."""

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
    # the node's data are the server's client data (every split)
    task = build_task(cfg, workspace.cache, SilentReporter())
    assert data1.train.labels.tolist() == task.units[1].labels.tolist()
    for split in ("val", "test"):
        assert (
            getattr(data1, split).labels.tolist() == getattr(task.clients[1], split).labels.tolist()
        )
    other = node.parts(config_text(workspace.config("seed=7")), 0, workspace.cache)
    assert other[0].seed == 7 and other[1] is not model  # another run: built again


def _npz(path, seed: int):
    from fedsb.io import save_records
    from fedsb.signals import GeneratorConfig, generate

    records = generate(
        GeneratorConfig(length=256, snr_db=(0.0, 20.0)), "bpsk,qpsk,gfsk", 30, seed, workers=0
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    save_records(records, path)
    return path


def test_a_node_on_the_users_files_holds_the_servers_client_of_them(workspace, tmp_path):
    _npz(tmp_path / "data" / "a.npz", 1)
    cfg = workspace.config(
        "data.source='files'", f"data.paths=['{tmp_path / 'data'}']", "partition.min_records=4"
    )
    _, _, data = node.parts(config_text(cfg), 2, workspace.cache)
    task = build_task(cfg, workspace.cache, SilentReporter())
    for split in ("train", "val", "test"):
        assert (
            getattr(data, split).labels.tolist() == getattr(task.clients[2], split).labels.tolist()
        )
        assert (
            getattr(data, split).snr_db.tolist() == getattr(task.clients[2], split).snr_db.tolist()
        )


def test_a_node_with_a_data_path_holds_its_own_files_split_by_group(workspace, tmp_path):
    site = _npz(tmp_path / "site" / "s.npz", 5).parent
    cfg = workspace.config()
    _, _, data = node.parts(config_text(cfg), 1, workspace.cache, (str(site),))
    sizes = [len(data.train), len(data.val), len(data.test)]
    assert sum(sizes) == 90 and sizes == [63, 9, 18]  # data.val_fraction 0.1, test_fraction 0.2
    assert data.train.class_names == ("bpsk", "qpsk", "gfsk")
    _, _, again = node.parts(config_text(cfg), 0, workspace.cache, (str(site),))
    assert again.test.labels.tolist() == data.test.labels.tolist()  # the partition-id plays no part
