"""Federated runs with the data at the sites: each node reads only its data-path, the server none.

Most tests run the real server code of a deployment (``flower.sites.serve_sites``) and the real
ClientApp in this process, over ``InProcessGrid``: Flower's Grid for a test, handing each
message to the ClientApp with that node's Context (Flower's ``TaskIdentity`` is set so that
messages can be made outside a run: a private detail of flwr 1.41, hence the guard). A run then
costs seconds, and an audit hook sees which files are opened while the server or each node
works. One Ray simulation (``engines.run_at_sites``, nodes in other processes) checks that its
numbers are the same and that the server's process opens no site file.

Site data: three directories of one npz each (3 classes, 256 samples, 30 records per class), as
in tests/cli/test_files_cli.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from fedsb.cli import main
from fedsb.data.imageset import join_sets
from fedsb.errors import ConfigError
from fedsb.evaluation.scoring import Predictions, score
from fedsb.federated.methods import method
from fedsb.federated.server import FederatedError, prepare
from fedsb.federated.site_eval import pool_evaluation, split_sums
from fedsb.federated.site_scores import pool_score, score_sums
from fedsb.federated.sites import SITES_FILE, site_data
from fedsb.federated.states import load_global
from fedsb.federated.task import adapted_model, build_task, load_basis
from fedsb.io import save_records
from fedsb.models.checkpoint import load_checkpoint
from fedsb.reporter import SilentReporter
from fedsb.runs import ADAPTER_FILE, EVALUATION_FILE, PREDICTIONS_FILE
from fedsb.signals import GeneratorConfig, generate
from fedsb.signals.summary import accuracy_by_snr
from fedsb.training.loop import evaluate_logits, predict
from fedsb.training.pretrain import resolve_pretrained

from .conftest import Workspace, read_rows

pytest.importorskip("flwr.serverapp")

from flwr.app import Context, MetricRecord, RecordDict  # noqa: E402

from fedsb.federated.flower import client_app  # noqa: E402
from fedsb.federated.flower.messages import metric_record  # noqa: E402
from fedsb.federated.flower.server_app import serve, site_options  # noqa: E402
from fedsb.federated.flower.sites import serve_sites  # noqa: E402

try:
    from flwr.supercore.task_identity import TaskIdentity
except ImportError:  # another flwr: the in-process harness needs this detail
    TaskIdentity = None

needs_identity = pytest.mark.skipif(TaskIdentity is None, reason="flwr without TaskIdentity")
FIRST_NODE = 100  # node ids of the in-process grid: 100, 101, ...


class OpenLog:
    """An audit hook: while active, every path opened or listed, with who was working."""

    EVENTS = frozenset({"open", "os.listdir", "os.scandir", "glob.glob"})

    def __init__(self) -> None:
        self.active, self.who, self.seen = False, "server", []

    def __call__(self, event: str, args: tuple) -> None:
        if not self.active or event not in self.EVENTS or not args:
            return
        path = args[0]
        if isinstance(path, str | bytes | os.PathLike):
            self.seen.append((self.who, os.path.realpath(os.fsdecode(path))))

    def under(self, directory: Path) -> set[str]:
        """Who opened or listed something inside ``directory``."""
        root = os.path.realpath(directory)
        return {who for who, p in self.seen if p == root or p.startswith(root + os.sep)}


OPENED = OpenLog()
sys.addaudithook(OPENED)  # inert unless a test turns it on


@contextlib.contextmanager
def watching() -> Iterator[OpenLog]:
    """Record opens while the block runs; what is yielded keeps them after it."""
    mine = OpenLog()
    OPENED.active, OPENED.who, OPENED.seen = True, "server", mine.seen
    try:
        yield mine
    finally:
        OPENED.active, OPENED.seen = False, []


class InProcessGrid:
    """Flower's Grid for the tests: node ``FIRST_NODE + i`` has node config ``configs[i]``."""

    def __init__(self, configs: list[dict]):
        self.contexts = {
            FIRST_NODE + i: Context(1, FIRST_NODE + i, dict(c), RecordDict(), {})
            for i, c in enumerate(configs)
        }

    def get_node_ids(self) -> list[int]:
        return list(self.contexts)

    def send_and_receive(self, messages, timeout=None):
        replies = []
        for msg in messages:
            node = msg.metadata.dst_node_id
            OPENED.who = f"node {node}"
            try:
                replies.append(client_app.app(msg, self.contexts[node]))
            finally:
                OPENED.who = "server"
        return replies


@contextlib.contextmanager
def flower_identity() -> Iterator[None]:
    saved = (TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id)
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1
    try:
        yield
    finally:
        TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id = saved


def site_configs(dirs: list[Path | str], n: int | None = None) -> list[dict]:
    n = len(dirs) if n is None else n
    return [
        {"partition-id": i, "num-partitions": n, "data-path": str(d)} for i, d in enumerate(dirs)
    ]


def run_here(ws: Workspace, out: Path, configs: list[dict], *overrides: str, **kw) -> Path:
    """A run at the sites of ``configs`` (node configs) into ``out``, all in this process."""
    cfg, run = prepare(out, ws.config("engine='flower'", *overrides), False)
    with flower_identity():
        serve_sites(
            InProcessGrid(configs), cfg, run, ws.cache, SilentReporter(), connect_timeout=2, **kw
        )
    return out


@pytest.fixture(scope="module")
def site_dirs(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("sites")
    dirs = []
    for i in range(4):  # three sites and a held-out test set for the server
        records = generate(
            GeneratorConfig(length=256, snr_db=(0.0, 20.0)), "bpsk,qpsk,gfsk", 30, 20 + i, workers=0
        )
        (root / f"site{i}").mkdir()
        save_records(records, root / f"site{i}" / f"site{i}.npz")
        dirs.append(root / f"site{i}")
    return dirs


@pytest.fixture(scope="module")
def site_run(workspace, site_dirs, tmp_path_factory) -> tuple[Path, OpenLog]:
    if TaskIdentity is None:
        pytest.skip("flwr without TaskIdentity")
    out = tmp_path_factory.mktemp("site-run") / "run"
    with watching() as log:
        run_here(workspace, out, site_configs(site_dirs[:3]))
    return out, log


def reference(ws: Workspace, run: Path, dirs: list[Path]):
    """Every site's splits (read here, as a node does) and the final model's logits on them."""
    cfg = ws.config("engine='flower'", "partition.clients=3")
    checkpoint = resolve_pretrained(cfg.pretrained, ws.cache, SilentReporter())
    model, meta = adapted_model(cfg, checkpoint)
    load_basis(model, run)
    load_global(model, method(cfg.method), load_checkpoint(run / ADAPTER_FILE)[0])
    classes = tuple(meta["class_names"])
    sites = [site_data(cfg, (str(d),), classes, None, SilentReporter()) for d in dirs]
    logits = [{s: predict(model, getattr(d, s)) for s in ("val", "test")} for d in sites]
    return sites, logits, classes


def _arrays(data, logits):
    return logits.double().numpy(), data.labels.numpy(), data.snr_db.numpy()


def test_each_node_reads_only_its_data_path_and_the_server_none(site_run, site_dirs):
    _, log = site_run
    for i, directory in enumerate(site_dirs[:3]):
        assert log.under(directory) == {f"node {FIRST_NODE + i}"}, (directory, log.under(directory))
    assert not log.under(site_dirs[3])


def test_rows_say_the_evaluation_was_federated(site_run):
    run, _ = site_run
    rows = read_rows(run)
    assert [r["stage"] for r in rows] == ["init", "round", "round", "final"]
    for row in rows:
        assert row["evaluation"] == "federated" and row["evaluated"] == [0, 1, 2], row
        assert row["evaluation_dropped"] == {} and row["evaluation_bytes"] > 0
        assert 0 < row["test_acc"] <= 1
    for row in rows[1:3]:
        assert row["accepted"] == [0, 1, 2] and 0 < row["val_acc"] <= 1
        assert row["evaluation_bytes"] > 3 * row["bytes_down_per_client"]  # the state went down
    assert rows[-1]["total_evaluation_bytes"] == sum(r["evaluation_bytes"] for r in rows)
    assert not (run / PREDICTIONS_FILE).exists()  # no logits left a site
    assert json.loads((run / SITES_FILE).read_text()) == {"data_at_sites": True, "test_data": []}


def test_federated_evaluation_equals_the_pooled_evaluation(workspace, site_run, site_dirs):
    run, _ = site_run
    sites, logits, classes = reference(workspace, run, site_dirs[:3])
    rows, evaluation = read_rows(run), json.loads((run / EVALUATION_FILE).read_text())
    for split, row in (("test", rows[-1]), ("val", rows[2])):  # round 2's state is the final one
        union = join_sets([getattr(s, split) for s in sites])
        pooled = evaluate_logits(torch.cat([lg[split] for lg in logits]), union)
        assert row[f"{split}_acc"] == pooled.accuracy
        assert row[f"{split}_loss"] == pytest.approx(pooled.loss, rel=1e-6)
    assert rows[-1]["test_acc_snr_ge_10"] == pooled_high(sites, logits)
    assert rows[-1]["test_acc_by_snr"] == rows[2]["test_acc_by_snr"]
    union = join_sets([s.test for s in sites])
    expected = evaluate_logits(torch.cat([lg["test"] for lg in logits]), union)
    assert rows[-1]["test_acc_by_snr"] == dict(zip(expected.snr_labels, expected.snr_accuracy))
    pred = Predictions(
        torch.cat([lg["test"] for lg in logits]).double().numpy(),
        union.labels.numpy(),
        union.snr_db.numpy().astype(np.float64),
        classes,
    )
    want, got = score(pred, evaluation["calibration"]["temperature"]), evaluation["test"]
    for key in ("count", "accuracy", "accuracy_snr_ge_10", "per_snr", "confusion", "class_names"):
        assert got[key] == want[key], key
    for name, row in want["per_class"].items():
        assert got["per_class"][name] == {**row, "average_precision": None}
    for when in ("calibration_before", "calibration_after"):
        assert got[when] == pytest.approx(want[when], rel=1e-9, abs=1e-12), when
    assert got["mean_average_precision"] is None and evaluation["evaluation"] == "federated"
    accuracy = [
        float((lg["test"].argmax(1) == s.test.labels).double().mean())
        for s, lg in zip(sites, logits)
    ]
    assert [c["accuracy"] for c in evaluation["clients"]] == accuracy == rows[-1]["client_test_acc"]


def pooled_high(sites, logits) -> float:
    hits = torch.cat([lg["test"].argmax(1) == s.test.labels for s, lg in zip(sites, logits)])
    snr = torch.cat([s.test.snr_db for s in sites])
    return float(hits[snr >= 10].double().mean())


def test_evaluation_bytes_are_the_measured_messages(workspace, site_run, site_dirs):
    run, _ = site_run
    sites, logits, _ = reference(workspace, run, site_dirs[:3])
    rows, evaluation = read_rows(run), json.loads((run / EVALUATION_FILE).read_text())
    temperature = evaluation["calibration"]["temperature"]
    size = lambda sums: MetricRecord(dict(metric_record(sums))).count_bytes()  # noqa: E731
    final = [
        size(score_sums(*_arrays(s.test, lg["test"]), temperature)) for s, lg in zip(sites, logits)
    ]
    assert rows[-1]["evaluation_bytes"] == sum(final)  # test logits kept: no state sent again
    ups = [
        size(
            {
                **split_sums(*_arrays(s.val, lg["val"]), "val."),
                **split_sums(*_arrays(s.test, lg["test"]), "test."),
            }
        )
        for s, lg in zip(sites, logits)
    ]
    assert rows[2]["evaluation_bytes"] == 3 * rows[2]["bytes_down_per_client"] + sum(ups)


def test_partition_rows_come_from_the_sites(workspace, site_run, site_dirs):
    run, _ = site_run
    sites, _, _ = reference(workspace, run, site_dirs[:3])
    rows = json.loads((run / "partition.json").read_text())
    assert [r["client"] for r in rows] == [0, 1, 2]
    for row, data in zip(rows, sites):
        assert row["records"] == len(data.train) and row["test"] == len(data.test)
        assert row["counts"] == np.bincount(data.train.labels.numpy(), minlength=3).tolist()
        assert row["profile"] == "own data (1 file)"


def test_report_copes_without_predictions(site_run, capsys):
    run, _ = site_run
    with pytest.raises(SystemExit) as done:
        main(["report", str(run)])
    assert done.value.code in (None, 0), capsys.readouterr().err
    page = (run / "report.html").read_text()
    assert "evaluated on the sites (federated evaluation)" in page
    assert (run / "figures" / "reliability.png").exists()  # from the summed bins
    assert not (run / "figures" / "pr.png").exists()
    assert "EvaluationFederated" in (run / "tex" / "numbers.tex").read_text()


@needs_identity
def test_a_server_test_set_is_evaluated_on_the_server(workspace, site_dirs, tmp_path):
    run = run_here(
        workspace,
        tmp_path / "run",
        site_configs(site_dirs[:3]),
        "rounds=1",
        test_paths=(str(site_dirs[3]),),
    )
    rows, evaluation = read_rows(run), json.loads((run / EVALUATION_FILE).read_text())
    assert [r["evaluation"] for r in rows] == ["server"] * 3
    assert "evaluated" not in rows[0]  # the init row needs no site
    assert rows[1]["evaluated"] == [0, 1, 2] and 0 < rows[1]["val_acc"] <= 1  # val: the sites
    pred = Predictions(**np.load(run / PREDICTIONS_FILE))  # the server's test set
    assert len(pred.labels) == 90 and rows[-1]["test_acc"] == float(
        (pred.logits.argmax(1) == pred.labels).mean()
    )
    assert evaluation["evaluation"] == "server" and len(evaluation["clients"]) == 3
    assert json.loads((run / SITES_FILE).read_text())["test_data"] == [str(site_dirs[3])]


def _fails(workspace, tmp_path, configs, pattern: str) -> None:
    with pytest.raises(FederatedError, match=pattern) as failure:
        run_here(workspace, tmp_path / "run", configs)
    assert "\n" not in str(failure.value)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # nothing trained or written
    assert not (tmp_path / "run" / SITES_FILE).exists()


@needs_identity
def test_a_bad_data_path_names_the_site_and_the_path(workspace, site_dirs, tmp_path):
    missing = tmp_path / "no-such-site"
    configs = site_configs([site_dirs[0], missing, site_dirs[2]])
    pattern = (
        rf"^site 1 \(SuperNode {FIRST_NODE + 1}\): data-path: {re.escape(str(missing))}: "
        r"matches no file \(no such file or directory\)$"
    )
    _fails(workspace, tmp_path, configs, pattern)


@needs_identity
def test_a_relative_or_absent_data_path_is_refused(workspace, site_dirs, tmp_path):
    configs = site_configs(site_dirs[:3])
    configs[1]["data-path"] = "site1"
    _fails(
        workspace,
        tmp_path,
        configs,
        rf"^site 1 \(SuperNode {FIRST_NODE + 1}\): data-path: 'site1' is a relative path; give "
        "an absolute one",
    )
    del configs[1]["data-path"]
    _fails(
        workspace,
        tmp_path,
        configs,
        rf"^site 1 \(SuperNode {FIRST_NODE + 1}\): no data-path in its node config; start it "
        r"with --node-config \"partition-id=1 num-partitions=3 data-path='/abs/dir'\"$",
    )


@needs_identity
def test_nodes_must_agree_on_the_number_of_sites(workspace, site_dirs, tmp_path):
    configs = site_configs(site_dirs[:3])
    configs[2]["num-partitions"] = 4
    _fails(workspace, tmp_path, configs, r"^the SuperNodes disagree on num-partitions: \[3, 4\]$")
    _fails(
        workspace,
        tmp_path,
        site_configs(site_dirs[:2], n=3),
        r"^no SuperNode with partition-id \[2\] within 2 s \(2 of 3 connected\)$",
    )


@needs_identity
def test_a_plain_run_refuses_a_node_with_its_own_data(workspace, site_dirs, tmp_path):
    cfg, run = prepare(tmp_path / "run", workspace.config("engine='flower'"), False)
    task = build_task(cfg, workspace.cache, SilentReporter())
    configs = [{"partition-id": i} for i in range(3)]
    configs[0]["data-path"] = str(site_dirs[0])
    with (
        flower_identity(),
        pytest.raises(FederatedError, match="^the SuperNode of partition-id 0 holds its own data"),
    ):
        serve(
            InProcessGrid(configs),
            task,
            cfg,
            run,
            workspace.cache,
            SilentReporter(),
            connect_timeout=2,
        )


@needs_identity
def test_a_run_at_the_sites_resumes_with_its_sites(workspace, site_dirs, tmp_path, monkeypatch):
    from fedsb.federated import server

    out, configs = tmp_path / "run", site_configs(site_dirs[:3])

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # after the last round's checkpoint, before the final row

    with monkeypatch.context() as mp:
        mp.setattr(server, "finish", killed)
        with pytest.raises(KeyboardInterrupt):
            run_here(workspace, out, configs, "rounds=1")
    cfg, run = prepare(out, None, True)
    assert site_options({}, cfg, run, True) == ()  # sites.json: the sites, no server test set
    with flower_identity():
        with pytest.raises(
            FederatedError, match=r"the run has 3 sites, but the SuperNodes say num-partitions=2$"
        ):
            serve_sites(
                InProcessGrid(site_configs(site_dirs[:2])),
                cfg,
                run,
                workspace.cache,
                SilentReporter(),
                resume=True,
                connect_timeout=2,
            )
        serve_sites(
            InProcessGrid(configs),
            cfg,
            run,
            workspace.cache,
            SilentReporter(),
            resume=True,
            connect_timeout=2,
        )
    rows = read_rows(out)
    assert [r["stage"] for r in rows] == ["init", "round", "final"]
    assert rows[-1]["evaluation"] == "federated" and rows[-1]["evaluated"] == [0, 1, 2]


def test_site_options_of_the_server_app(workspace, tmp_path):
    cfg, run = prepare(tmp_path / "run", workspace.config(), False)
    assert site_options({}, cfg, run, False) is None
    assert site_options({"data-at-sites": True}, cfg, run, False) == ()
    assert site_options(
        {"data-at-sites": True, "test-data": "/t/a.npz, /t/b"}, cfg, run, False
    ) == (
        "/t/a.npz",
        "/t/b",
    )
    cases = [
        (
            {"data-at-sites": "yes"},
            "^run config: data-at-sites: expected true or false, got 'yes'$",
        ),
        (
            {"test-data": "/t/a.npz"},
            "^run config: test-data: a server test set needs data-at-sites = true$",
        ),
        (
            {"data-at-sites": True, "test-data": "t.npz"},
            "^run config: test-data: 't.npz' is a relative path",
        ),
        ({"data-at-sites": True}, None),  # resumed below: this directory holds no sites.json
    ]
    for conf, pattern in cases[:3]:
        with pytest.raises(ConfigError, match=pattern):
            site_options(conf, cfg, run, False)
    with pytest.raises(ConfigError, match="is not a run at the sites"):
        site_options(cases[3][0], cfg, run, True)
    files = workspace.config("data.source='files'", f"data.paths=['{tmp_path}']")
    with pytest.raises(
        ConfigError, match="^data.source: 'files' makes the server read training files"
    ):
        site_options({"data-at-sites": True}, files, run, False)


@pytest.mark.parametrize("kind", ["grid", "width", "edge", "unknown"])
def test_pooled_snr_bins_equal_those_of_the_union(kind):
    rng = np.random.default_rng(["grid", "width", "edge", "unknown"].index(kind))
    values = {
        "grid": lambda n: rng.choice([-10.0, -4.0, 2.0, 8.0, 14.0, 20.0, np.nan], n),
        "width": lambda n: rng.uniform(-3, 25, n).astype(np.float32).astype(np.float64),
        "edge": lambda n: np.minimum(rng.uniform(0.1, 19.0, n) + 20.0 * (np.arange(n) == 0), 20.0),
        "unknown": lambda n: np.full(n, np.nan),
    }[kind]  # edge: one record exactly on the last 5-dB edge (20 dB)
    names = ("a", "b", "c", "d")
    logits, labels, snr, parts = [], [], [], []
    for n in (50, 0, 1, 37):  # a site with an empty test split answers zeros
        z, y, s = rng.normal(size=(n, 4)) * 3, rng.integers(0, 4, n), values(n)
        logits.append(z), labels.append(y), snr.append(s)
        parts.append(score_sums(z, y, s, 1.7))
    z, y, s = (np.concatenate(a) for a in (logits, labels, snr))
    hit = z.argmax(1) == y
    want = accuracy_by_snr(hit.astype(float), s)
    got = pool_evaluation(parts, "eval.")
    assert (got.snr_labels, got.snr_counts) == (want.labels, want.counts)
    np.testing.assert_array_equal(got.snr_accuracy, want.accuracy)
    high = s >= 10
    assert got.accuracy == hit.mean()
    if high.any():
        assert got.accuracy_high_snr == hit[high].mean()
    else:
        assert np.isnan(got.accuracy_high_snr)
    ref = score(Predictions(z, y, s, names), 1.7)
    pooled = pool_score(parts, names, 1.7)
    assert pooled["per_snr"] == ref["per_snr"] and pooled["confusion"] == ref["confusion"]
    assert pooled["calibration_after"] == pytest.approx(ref["calibration_after"], rel=1e-9)


@pytest.fixture(scope="module")
def simulated(workspace, site_dirs, tmp_path_factory) -> tuple[Path, OpenLog]:
    """The same run on Flower's Simulation Engine: the nodes are Ray actors (other processes)."""
    pytest.importorskip("flwr.simulation")
    pytest.importorskip("ray")
    from fedsb.federated.engines import run_at_sites

    root = tmp_path_factory.mktemp("simulated")
    mp = pytest.MonkeyPatch()
    mp.setenv("FLWR_HOME", str(root / "flwr-home"))
    try:
        with watching() as log:
            dirs = [str(d) for d in site_dirs[:3]]
            run_at_sites(workspace.config(), root / "run", dirs, cache_dir=workspace.cache)
    finally:
        mp.undo()
    return root / "run", log


def _same(a, b, where: str = "") -> None:
    if isinstance(a, dict):
        assert set(a) == set(b), f"{where}: {set(a) ^ set(b)}"
        for key in set(a) - {"seconds"}:  # wall clock
            _same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert b == pytest.approx(a, rel=1e-6, abs=1e-9), where
    else:
        assert a == b, where


@pytest.mark.slow  # a Ray start-up: 20-40 s
def test_the_simulation_runs_the_same_and_its_server_opens_no_site_file(
    simulated, site_run, site_dirs
):
    run, log = simulated
    assert log.seen, "the audit hook saw nothing"
    for directory in site_dirs:
        assert not log.under(directory), directory  # the nodes ran in other processes
    here, _ = site_run
    _same(read_rows(here), read_rows(run), "metrics")
    for name in (EVALUATION_FILE, "partition.json", SITES_FILE):
        _same(json.loads((here / name).read_text()), json.loads((run / name).read_text()), name)
