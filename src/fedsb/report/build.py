"""``fedsb report`` / ``fedsb paper``: figures, tables, macros, report.html and paper.pdf.

Everything is derived from the files of the runs under ``root`` (see ``study``); the outputs go
to ``root``: ``report.html``, ``figures/<name>.png|pdf``, ``tex/*.tex`` and, for the paper,
``paper.tex`` and ``paper.pdf``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..evaluation.metrics import Reliability
from ..federated.methods import POOLED, is_pooled
from ..io.cache import atomic_file
from ..runs import REPORT_FILE
from . import figures as fig
from .checks import RELIABILITY_KEYS
from .html import render, versions
from .latex import build_pdf, macro_name, write_tex
from .study import RunRecord, Study, load_study
from .tables import count, kilobytes, megabytes, num, pct, study_tables


@dataclass(frozen=True)
class Report:
    """What ``build_report`` wrote: report.html, the figure files and the LaTeX files."""

    html: Path
    figures: tuple[Path, ...]
    tex: tuple[Path, ...]


def _test(run: RunRecord) -> dict:
    return (run.evaluation or {}).get("test") or {}


def make_figures(study: Study, out: Path) -> dict[Path, str]:
    """The figures this study has data for: PNG path -> caption."""
    primary, methods = study.primary, study.by_method()
    made: dict[Path, str] = {}
    if any(r.rounds for r in methods.values()):
        made[fig.rounds_figure({m: r.rows for m, r in methods.items()}, out / "rounds.png")] = (
            "Global test accuracy per round (left) and against cumulative bytes (right)."
        )
    averaged = {
        m: r.rows
        for m, r in methods.items()
        if not is_pooled(m) and any("update_agreement" in row for row in r.rows)
    }
    if averaged:
        made[fig.agreement_figure(averaged, out / "agreement.png")] = (
            "Update agreement per round: the length of the mean client update over the mean "
            "length of the updates (1: all clients moved alike)."
        )
    scored = {m: _test(r) for m, r in methods.items() if _test(r).get("per_snr")}
    if scored:
        made[fig.snr_figure(scored, out / "snr.png")] = "Test accuracy per SNR bin, per method."
    cells = [
        {
            "method": r.method,
            "rank": r.rank if r.rank is not None else 0,
            "total_bytes": r.final["total_bytes"],
            "accuracy": r.final["test_acc"],
        }
        for r in study.runs
        if r.finished
        and not is_pooled(r.method)
        and r.final.get("total_bytes")
        and r.final.get("test_acc") is not None
    ]
    if len(cells) > 1:
        made[fig.pareto_figure(cells, out / "pareto.png")] = (
            "Final accuracy against total bytes per method and rank; dotted: Pareto front."
        )
    made.update(_prediction_figures(primary, out))
    if _test(primary).get("confusion"):
        made[fig.confusion_figure(_test(primary), out / "confusion.png")] = (
            f"Confusion matrix of {primary.method} (row-normalised)."
        )
    if primary.partition:
        names = _test(primary).get("class_names") or [
            str(i) for i in range(len(primary.partition[0]["counts"]))
        ]
        made[fig.partition_figure(primary.partition, names, out / "partition.png")] = (
            "Training records per client and class; each client's SNR window and channel."
        )
    return made


def _prediction_figures(primary: RunRecord, out: Path) -> dict[Path, str]:
    """Reliability and precision-recall from the test predictions.

    Without them (a federated evaluation: the predictions stayed at the sites), the
    reliability diagram from evaluation.json's summed bins and no precision-recall figure.
    """
    pred, test = primary.predictions(), _test(primary)
    temperature = float(test.get("temperature", 1.0))
    caption = f"Reliability of {primary.method} before and after temperature scaling."
    if pred is not None:
        return {
            fig.reliability_figure(pred, temperature, out / "reliability.png"): caption,
            fig.pr_figure(pred, temperature, out / "pr.png"): (
                f"Precision-recall per class, {primary.method}."
            ),
        }
    bins = [test.get(f"reliability_{when}") for when in ("before", "after")]
    if None in bins:
        return {}
    before, after = (
        Reliability(*(np.asarray(b[k], dtype=np.float64) for k in RELIABILITY_KEYS)) for b in bins
    )
    png = fig.reliability_bins_figure(before, after, temperature, out / "reliability.png")
    return {png: caption[:-1] + ", from the sites' summed bins (federated evaluation)."}


def figure_notes(study: Study) -> list[str]:
    """What the report leaves out, and why (shown under the figures)."""
    primary = study.primary
    if not primary.finished or primary.predictions() is not None:
        return []
    if (primary.final or {}).get("evaluation") == "federated":
        return [
            f"{primary.method} was evaluated on the sites (federated evaluation): the test "
            "predictions never left them, so there is no precision-recall figure and no "
            "average precision; the other scores are pooled from the sites' sums."
        ]
    return [f"{primary.method} saved no test predictions: no precision-recall figure."]


def _final(methods: dict[str, RunRecord], method: str, key: str):
    """``key`` of ``method``'s final row (None when the method or the value is missing)."""
    return (methods[method].final or {}).get(key) if method in methods else None


def numbers(study: Study) -> dict[str, str]:
    """Every number the paper quotes, by macro name."""
    primary = study.primary
    cfg = primary.config
    part, data = cfg.get("partition", {}), cfg.get("data", {})
    test, final = _test(primary), primary.final or {}
    calib = (primary.evaluation or {}).get("calibration") or {}
    before, after = test.get("calibration_before", {}), test.get("calibration_after", {})
    out = {
        "FedsbVersion": versions()["fedsb"],
        "ReportDate": datetime.now(UTC).strftime("%Y-%m-%d"),
        "PrimaryMethodName": primary.method,
        "NumClients": str(part.get("clients", "?")),
        "NumRounds": str(cfg.get("rounds", "?")),
        "Rank": str(primary.rank),
        "NumClasses": str(len(test.get("class_names", [])) or "?"),
        "RecordsPerClient": f"{part.get('records_per_client', 0):,}",
        "DirichletAlpha": f"{part.get('dirichlet_alpha', 0):g}",
        "SnrWindow": f"{part.get('snr_window_db', 0):g}",
        "LocalEpochs": str(cfg.get("client", {}).get("local_epochs", "?")),
        "RecordLength": str(data.get("generator", {}).get("length", "?")),
        "InitSource": str(cfg.get("init_source", "?")),
        "PrimaryAcc": pct(final.get("test_acc")),
        "PrimaryAccHigh": pct(final.get("test_acc_snr_ge_10")),
        "PrimaryParams": count(final.get("trained_parameters")),
        "PrimaryKBRound": kilobytes(final.get("bytes_per_round_per_client")),
        "PrimaryTotalMB": megabytes(final.get("total_bytes")),
        "PrimaryEceBefore": pct(before.get("ece")),
        "PrimaryEceAfter": pct(after.get("ece")),
        "PrimaryBrierBefore": num(before.get("brier")),
        "PrimaryBrierAfter": num(after.get("brier")),
        "PrimaryNllBefore": num(before.get("nll")),
        "PrimaryNllAfter": num(after.get("nll")),
        "Temperature": num(test.get("temperature"), 2),
        "CalibrationSteps": str(calib.get("steps", "?")),
        "ValNllBefore": num(calib.get("nll_before")),
        "ValNllAfter": num(calib.get("nll_after")),
    }
    if primary.predictions() is None and final.get("evaluation") == "federated":
        out["EvaluationFederated"] = (
            "The test scores are pooled from sums the sites computed on their own test splits "
            "(federated evaluation): no prediction left a site, so there are no "
            "precision-recall curves."
        )
    methods = study.by_method()
    for method, run in methods.items():
        f = run.final or {}
        out[macro_name("acc", method)] = pct(f.get("test_acc"))
        out[macro_name("kb round", method)] = kilobytes(f.get("bytes_per_round_per_client"))
    own, central = (_final(methods, m, "test_acc") for m in (primary.method, *POOLED[:1]))
    if not is_pooled(primary.method) and None not in (own, central):
        out["GapCentralized"] = f"{100 * (central - own):.1f}"
    own, fedit = (
        _final(methods, m, "bytes_per_round_per_client") for m in (primary.method, "fedit")
    )
    if own and fedit is not None:
        out["BytesRatioFedit"] = f"{fedit / own:.1f}"
    return out


def summary_sentence(n: dict[str, str]) -> str:
    """The report's one-paragraph summary, from the paper's numbers (``numbers``)."""
    text = (
        f"{n['PrimaryMethodName']} (rank {n['Rank']}, {n['NumClients']} clients, "
        f"{n['NumRounds']} rounds): {n['PrimaryAcc']} % test accuracy "
        f"({n['PrimaryAccHigh']} % at SNR ≥ 10 dB), {n['PrimaryKBRound']} kB per client per "
        f"round; ECE {n['PrimaryEceBefore']} % → {n['PrimaryEceAfter']} % with T = "
        f"{n['Temperature']}."
    )
    if "GapCentralized" in n:
        text += f" Centralized LoRA-SB: {n['AccCentralized']} % ({n['GapCentralized']} points)."
    if "BytesRatioFedit" in n:
        text += f" FedIT: {n['AccFedit']} % at {n['BytesRatioFedit']}× the bytes per round."
    return text


def build_report(root: Path, command: str = "fedsb report") -> Report:
    """Figures, tables, tex/ and report.html for the runs under ``root``."""
    root = Path(root)
    study = load_study(root)
    if not any(r.finished for r in study.runs):
        raise DataError(root, "no finished run here (no final row in metrics.jsonl)")
    study.primary.predictions()  # read (and checked) before anything is written
    made = make_figures(study, root / "figures")
    tables = study_tables(study)
    values = numbers(study)
    tex = write_tex(root / "tex", tables, values)
    page = render(
        f"fedsb report: {root.name}",
        summary_sentence(values),
        tables,
        made,
        study.primary.config_text,
        command,
        notes=figure_notes(study),
    )
    html_path = root / REPORT_FILE
    with atomic_file(html_path) as handle:
        handle.write(page.encode("utf-8"))
    return Report(html_path, tuple(made), tuple(tex))


def build_paper(root: Path, command: str = "fedsb paper") -> tuple[Report, Path]:
    """The report, then ``paper.pdf`` (raises TexMissing, with the install line, without TeX)."""
    report = build_report(root, command)
    return report, build_pdf(Path(root))
