"""fedsb report / paper on tiny real runs: files, contents, PDF sections, the page in Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from fedsb.errors import DataError
from fedsb.report.build import build_paper, build_report, numbers
from fedsb.report.latex import TexMissing, build_pdf
from fedsb.report.study import load_study

FIGURES = ("rounds", "agreement", "snr", "pareto", "reliability", "pr", "confusion", "partition")


@pytest.fixture(scope="module")
def study_dir(workspace, tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    for method in ("fedsb", "fedit", "centralized"):
        workspace.run(root / method, f"method='{method}'")
    return root


@pytest.fixture(scope="module")
def report(study_dir):
    return build_report(study_dir, "fedsb report test")


def test_report_files_and_every_figure(report, study_dir):
    assert report.html == study_dir / "report.html"
    assert {p.stem for p in report.figures} == set(FIGURES)
    for png in report.figures:
        assert png.with_suffix(".pdf").exists()
    names = {p.name for p in report.tex}
    assert {"methods.tex", "snr.tex", "numbers.tex", "tables.tex"} <= names


def test_html_is_self_contained_with_tables_config_and_versions(report, study_dir):
    page = report.html.read_text()
    assert page.count('src="data:image/png;base64,') == len(FIGURES)
    assert not re.search(r'src="(?!data:)', page)  # nothing loaded from elsewhere
    for method in ("fedsb", "fedit", "centralized"):
        assert f"<td>{method}</td>" in page
    assert 'id="tab-methods"' in page and 'id="tab-snr"' in page
    assert "[partition]" in page  # the resolved config
    assert "<td>torch</td><td>2.13.0" in page


def test_numbers_come_from_the_run_files(study_dir, report):
    study = load_study(study_dir)
    fedsb = study.by_method()["fedsb"]
    final = fedsb.final
    values = numbers(study)
    assert values["PrimaryMethodName"] == "fedsb"
    assert values["PrimaryAcc"] == f"{100 * final['test_acc']:.1f}"
    ev = json.loads((study_dir / "fedsb" / "evaluation.json").read_text())
    assert values["Temperature"] == f"{ev['test']['temperature']:.2f}"
    assert values["PrimaryEceAfter"] == f"{100 * ev['test']['calibration_after']['ece']:.1f}"
    fedit = study.by_method()["fedit"].final
    ratio = fedit["bytes_per_round_per_client"] / final["bytes_per_round_per_client"]
    assert values["BytesRatioFedit"] == f"{ratio:.1f}" and ratio > 1
    tex = (study_dir / "tex" / "numbers.tex").read_text()
    assert f"\\newcommand{{\\PrimaryAcc}}{{{values['PrimaryAcc']}}}" in tex


def test_not_a_run_directory_is_a_one_line_error(tmp_path):
    with pytest.raises(DataError, match="no run directories here"):
        build_report(tmp_path)
    (tmp_path / "metrics.jsonl").write_text("{not json\n")
    with pytest.raises(DataError, match=r"metrics\.jsonl: line 1 is not JSON$"):
        build_report(tmp_path)


def test_without_tex_the_error_says_how_to_install(study_dir, report, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(TexMissing, match="apt-get install"):
        build_pdf(study_dir)


@pytest.mark.skipif(not shutil.which("latexmk"), reason="TeX not installed (.ci/run installs it)")
def test_paper_pdf_has_its_sections_and_figures(study_dir, monkeypatch):
    monkeypatch.chdir(study_dir.parent)  # a relative run path, as `make demo` passes it
    _, pdf = build_paper(Path(study_dir.name))
    assert pdf == study_dir / "paper.pdf"
    if not shutil.which("pdftotext"):
        pytest.skip("pdftotext (poppler-utils) not installed")
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
    for section in ("Abstract", "Method", "Setup", "Results", "Calibration", "Communication"):
        assert re.search(rf"^(\d+\s+)?{section}$", text, re.M), section
    for number in ("Figure 1", "Figure 7", "Table 1"):
        assert number in text
    assert "missing figure" not in text and "??" not in text
    values = numbers(load_study(study_dir))
    assert f"{values['PrimaryAcc']} % test accuracy" in text.replace("\n", " ")


@pytest.mark.skipif(not shutil.which("chromium"), reason="Chromium not installed")
def test_report_opens_in_headless_chromium_with_every_figure_loaded(report, tmp_path):
    wrapper = tmp_path / "wrapper.html"
    wrapper.write_text(
        f'<!DOCTYPE html><html><body><iframe id="f" src="{report.html.as_uri()}"></iframe>'
        '<pre id="out">pending</pre><script>'
        'document.getElementById("f").addEventListener("load", () => {'
        ' const d = document.getElementById("f").contentDocument;'
        ' const imgs = Array.from(d.images).map(i => [i.closest("figure").id, i.naturalWidth]);'
        ' document.getElementById("out").textContent = "RESULT" + JSON.stringify(imgs);});'
        "</script></body></html>"
    )
    cmd = [
        "chromium", "--headless", "--no-sandbox", "--disable-gpu",
        "--allow-file-access-from-files", "--enable-logging=stderr", "--v=0",
        "--virtual-time-budget=10000", f"--user-data-dir={tmp_path / 'profile'}",
        "--dump-dom", wrapper.as_uri(),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    found = re.search(r"RESULT(\[.*?\])</pre>", done.stdout)
    assert found, done.stderr[-2000:]
    images = json.loads(found.group(1))
    assert {name for name, _ in images} == {f"fig-{f}" for f in FIGURES}
    assert all(width > 0 for _, width in images), images
    console = [x for x in done.stderr.splitlines() if ":CONSOLE" in x and "report.html" in x]
    assert console == []


def test_a_short_side_run_does_not_replace_the_main_run(study_dir, tmp_path):
    """A benchmark's 1-round engine comparison next to the 2-round main run of the method."""
    root = tmp_path / "mixed"
    shutil.copytree(study_dir / "fedsb", root / "fedsb")
    shutil.copytree(study_dir / "fedsb", root / "a-short-fedsb")
    rows = (root / "a-short-fedsb" / "metrics.jsonl").read_text().splitlines()
    kept = [
        r for r in rows if json.loads(r).get("round", 0) < 2 or json.loads(r)["stage"] == "final"
    ]
    (root / "a-short-fedsb" / "metrics.jsonl").write_text("\n".join(kept) + "\n")
    study = load_study(root)
    assert [r.name for r in study.runs] == ["a-short-fedsb", "fedsb"]
    assert study.by_method()["fedsb"].name == "fedsb" and study.primary.name == "fedsb"
