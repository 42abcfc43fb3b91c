"""fedsb sweep: cells per method x rank, sweep.json, Pareto figure, resumable per cell."""

from __future__ import annotations

import json
import shutil

import pytest

from fedsb.cli.sweep import curve_line
from fedsb.errors import ConfigError
from fedsb.federated.sweep import (
    curve_gaps,
    pareto_points,
    parse_cell,
    plan_cells,
    run_sweep,
)
from fedsb.report.figures import pareto_figure

from .cli.test_data_cli import run as cli
from .federated.conftest import (
    read_rows,
    workspace,  # noqa: F401  (the tiny pretrained backbone)
)


def test_cells_rankless_methods_once():
    names = [c.name for c in plan_cells(["fedsb", "fedavg", "fedit"], [2, 8])]
    assert names == ["fedsb-r2", "fedsb-r8", "fedavg", "fedit-r2", "fedit-r8"]
    with pytest.raises(ConfigError, match="unknown 'lora'"):
        plan_cells(["lora"], [2])
    with pytest.raises(ConfigError, match="positive integers"):
        plan_cells(["fedsb"], [0])


@pytest.fixture(scope="module")
def sweep(workspace, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("sweep")
    base = workspace.config("rounds=1")
    results = run_sweep(base, out, ["fedsb", "fedit", "fedavg"], [2, 4], workspace.cache)
    assert not (out / "figures").exists()  # drawing is the caller's (the report layer's)
    pareto_figure(pareto_points(results), out / "figures" / "pareto.png")  # as `fedsb sweep` does
    return out, base, workspace, results


def test_pareto_points_leave_out_pooled_runs_and_put_rankless_cells_at_rank_0():
    results = [
        {"cell": "fedsb-r4", "method": "fedsb", "rank": 4},
        {"cell": "fedavg", "method": "fedavg", "rank": None},
        {"cell": "centralized", "method": "centralized", "rank": None},
    ]
    assert pareto_points(results) == [
        {"cell": "fedsb-r4", "method": "fedsb", "rank": 4},
        {"cell": "fedavg", "method": "fedavg", "rank": 0},
    ]


def test_sweep_writes_every_cell_the_table_and_the_figure(sweep):
    out, _, _, results = sweep
    assert [r["cell"] for r in results] == [
        "fedsb-r2",
        "fedsb-r4",
        "fedit-r2",
        "fedit-r4",
        "fedavg",
    ]
    assert json.loads((out / "sweep.json").read_text()) == results
    assert (out / "figures" / "pareto.png").exists()
    by = {r["cell"]: r for r in results}
    assert (
        by["fedsb-r2"]["bytes_per_round_per_client"] < by["fedsb-r4"]["bytes_per_round_per_client"]
    )
    assert (
        by["fedit-r4"]["bytes_per_round_per_client"] > by["fedsb-r4"]["bytes_per_round_per_client"]
    )
    for cell in by:
        rows = read_rows(out / cell)
        final = rows[-1]
        assert final["stage"] == "final" and final["test_acc"] == by[cell]["accuracy"]
        init = [r for r in rows if r["stage"] == "init"]
        assert by[cell]["round0_bytes"] == (init[0]["cumulative_bytes"] if init else 0)
        assert 0 <= by[cell]["round0_bytes"] < by[cell]["total_bytes"]
    assert by["fedsb-r2"]["round0_bytes"] > 0  # the basis: the sketch, then B and A


def test_rerun_keeps_done_cells_and_finishes_interrupted_ones(sweep):
    out, base, ws, results = sweep
    done = out / "fedsb-r2" / "metrics.jsonl"
    stamp = done.stat().st_mtime_ns
    # fedit-r2 lost its final row (killed during the final evaluation): resumed from its state
    metrics = out / "fedit-r2" / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    metrics.write_text("\n".join(lines[:-1]) + "\n")
    # fedavg died before its first checkpoint: started again
    for f in (out / "fedavg").iterdir():
        if f.name != "config.toml" and f.is_file():
            f.unlink()
    seen = {}
    again = run_sweep(base, out, ["fedsb", "fedit", "fedavg"], [2, 4], ws.cache,
                      on_cell=lambda c, s: seen.setdefault(c.name, s))  # fmt: skip
    assert seen == {"fedsb-r2": "done", "fedsb-r4": "done", "fedit-r2": "resume",
                    "fedit-r4": "done", "fedavg": "new"}  # fmt: skip
    assert done.stat().st_mtime_ns == stamp
    assert again == results  # the same numbers: every draw is seeded


def test_parallel_cells_give_the_serial_sweeps_numbers(sweep, tmp_path):
    """Two worker processes, the same seeded cells: sweep.json equal to the serial one's."""
    out, base, ws, results = sweep
    announced = []
    parallel = run_sweep(base, tmp_path / "par", ["fedsb", "fedit", "fedavg"], [2, 4], ws.cache,
                         on_cell=lambda c, s: announced.append(s), jobs=2)  # fmt: skip
    assert parallel == results and announced == ["new"] * 5
    assert json.loads((tmp_path / "par" / "sweep.json").read_text()) == json.loads(
        json.dumps(results)
    )
    with pytest.raises(ConfigError, match="jobs: must be an integer >= 1, got 0"):
        run_sweep(base, tmp_path / "x", ["fedsb"], [2], ws.cache, jobs=0)


def test_cells_of_another_sweep_into_the_same_directory_join_the_table(sweep, tmp_path, capsys):
    """fedsb at one more rank, alone: sweep.json, the table and the figure hold every cell."""
    out, base, ws, results = sweep
    two = tmp_path / "two"
    shutil.copytree(out, two)
    (two / "notes").mkdir()  # not a cell: left alone
    extra = run_sweep(base, two, ["fedsb"], [3], ws.cache)
    assert [r["cell"] for r in extra] == ["fedsb-r3"]
    saved = json.loads((two / "sweep.json").read_text())
    assert [r["cell"] for r in saved] == ["fedsb-r3"] + [r["cell"] for r in results]
    assert saved[1:] == json.loads(json.dumps(results))
    args = [
        "sweep",
        "--out",
        str(two),
        "--methods",
        "fedsb",
        "--ranks",
        "3",
        "--cache",
        str(ws.cache),
    ]
    code, stdout, _ = cli([*args, "--config", str(two / "fedsb-r3" / "config.toml")], capsys)
    assert code == 0 and "fedit-r4" in stdout and "fedsb-r3" in stdout
    assert "on or above" in stdout and "of 3 other cells" in stdout


def test_cell_names_parse_back():
    for cell in plan_cells(["fedsb", "fedavg", "head-only", "fedit"], [1, 16]):
        assert parse_cell(cell.name) == cell
    for name in ("notes", "fedsb", "fedsb-r0", "fedsb-r04", "fedavg-r4", "nope-r4", "fedsb-rx"):
        assert parse_cell(name) is None, name


def test_cli_bad_ranks_and_methods_exit_2(tmp_path, capsys):
    code, _, err = cli(["sweep", "--out", str(tmp_path / "s"), "--ranks", "4,x"], capsys)
    assert code == 2 and "--ranks" in err
    code, _, err = cli(["sweep", "--out", str(tmp_path / "s"), "--methods", "fedsb,nope"], capsys)
    assert code == 2 and "unknown 'nope'" in err


def _cell(name: str, accuracy: float, total: int) -> dict:
    method, _, rank = name.partition("-r")
    return {"cell": name, "method": method, "rank": int(rank) if rank else None,
            "accuracy": accuracy, "total_bytes": total}  # fmt: skip


def test_curve_gaps_against_a_hand_worked_sweep():
    """fedsb at (10 B, 0.60) and (40 B, 0.70); each other cell judged by hand."""
    results = [
        _cell("fedsb-r4", 0.60, 10),
        _cell("fedsb-r16", 0.70, 40),
        _cell("fedit-r4", 0.65, 40),  # fedsb-r16 costs as much: +5 points
        _cell("fedit-r16", 0.72, 100),  # the best fedsb within 100 B is 0.70: -2 points
        _cell("head-only", 0.50, 5),  # cheaper than any fedsb cell
        _cell("ffa-r4", 0.60, 20),  # fedsb-r4: a tie, on the curve
        {**_cell("centralized", 0.9, 0), "method": "centralized"},  # pooled: no bytes, left out
    ]
    gaps = {g["cell"]: g for g in curve_gaps(results)}
    assert set(gaps) == {"fedit-r4", "fedit-r16", "head-only", "ffa-r4"}
    assert gaps["fedit-r4"]["gap_points"] == pytest.approx(5.0)
    assert gaps["fedit-r16"]["gap_points"] == pytest.approx(-2.0)
    assert gaps["fedit-r16"]["best"] == 0.70
    assert gaps["head-only"]["gap_points"] is None and gaps["head-only"]["best"] is None
    assert gaps["ffa-r4"]["gap_points"] == pytest.approx(0.0)
    assert curve_gaps([r for r in results if r["method"] != "fedsb"]) == []
    line = curve_line(list(gaps.values()))
    assert line.startswith("fedsb's curve is on or above 2 of 4 other cells")
    assert "most below fedit-r16 (-2.0 points)" in line
    assert line.endswith("cheaper than any fedsb cell: head-only")


def test_cli_keeps_done_cells_and_draws_the_pareto_figure(sweep, capsys):
    out, _, ws, results = sweep
    figure = out / "figures" / "pareto.png"
    figure.unlink()
    args = ["sweep", "--out", str(out), "--methods", "fedsb,fedit,fedavg", "--ranks", "2,4"]
    args += ["--config", str(out / "fedsb-r2" / "config.toml"), "--cache", str(ws.cache)]
    code, stdout, _ = cli(args, capsys)
    assert code == 0
    assert figure.exists()
    for r in results:
        assert f"{r['cell']}: done, kept" in stdout
    assert "fedsb's curve is on or above" in stdout
