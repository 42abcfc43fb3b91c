"""Transfer to other toolchains: zero-shot and few-shot accuracy on GNU Radio and TorchSig sets.

Run (the data is made on first use, with this bench's own seeds; a toolchain that is not
installed is skipped with a line that says how to get it)::

    python bench/bench_transfer.py --out runs/transfer              # shots 10,100,1000
    python bench/bench_transfer.py --out runs/transfer --quick      # 10 shots, small test sets

* **Data.** GNU Radio (Debian's ``gnuradio``, run by ``/usr/bin/python3``): RadioML-like
  transmitters through ``channel_model`` (``scripts/gnuradio_recordings.py``), a training site
  (seed 31) and a final test recording (seed 32). TorchSig 2.2 (``make bench-torchsig``'s
  venv): level-2 impairments (``scripts/torchsig_recordings.py``), training (seed 41) and final
  test (seed 42) sets. The test sets are only ever scored: nothing is chosen on them.
* **Zero-shot.** Each ``--model`` (any finished run: a pretrain run, the demo's federated run,
  a finetune run) on each test set, as ``fedsb evaluate`` scores it.
* **Few-shot.** From ``--pretrained``, LoRA-SB at r = 16 (``fedsb finetune``'s loop) with N
  labelled records per class (``data.max_per_class``, whole bursts), its validation split drawn
  from those records; and the raw-IQ 1-D CNN (``models/iq_cnn.py``) trained from scratch on the
  very same records. Both train for ``max(8 epochs, 300 steps)``.
* **Figures.** Accuracy overall, at high SNR (GNU Radio: >= 10 dB, its Es/N0-like SNR; TorchSig:
  >= 20 dB of its own peak-PSD SNR, which does not compare with RadioML's), and per 5 dB bin.
  ``OUT/transfer.json`` holds every number; the table is printed.

Cost on one CPU thread: a 1,000-shot row (11,000 records, 8 epochs, LoRA-SB and the CNN) takes
6-7 minutes per toolchain.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from fedsb.config import apply_overrides, from_dict, load_config
from fedsb.data.file_sets import file_splits
from fedsb.data.imageset import ImageSet
from fedsb.evaluation.evaluate_run import evaluate_run
from fedsb.images.config import ImageConfig
from fedsb.models.checkpoint import images_meta, load_checkpoint
from fedsb.models.iq_cnn import IQCNN, iq_to_tensor
from fedsb.reporter import SilentReporter
from fedsb.signals.classes import RML2016_CLASSES
from fedsb.training.config import FinetuneConfig, TrainConfig
from fedsb.training.finetune import finetune
from fedsb.training.loop import fit, predict
from fedsb.training.pretrain import resolve_pretrained

ROOT = Path(__file__).resolve().parents[1]
HIGH_SNR = {"gnuradio": 10.0, "torchsig": 20.0}  # dB, each toolchain's own SNR (module doc)
MIN_STEPS, MIN_EPOCHS = 300, 8  # --quick: 20 steps
TARGET = RML2016_CLASSES  # what both toolchains' sets hold


def _call(cmd: list[str], what: str) -> bool:
    """Run a data generator; False (with the reason printed) when it cannot run here."""
    if not Path(cmd[0]).exists():
        print(f"{what}: skipped ({cmd[0]} not found)")
        return False
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        print(f"{what}: skipped ({done.stderr.strip().splitlines()[-1:]})")
    return done.returncode == 0


def gnuradio_sets(out: Path, quick: bool) -> dict[str, Path] | None:
    """(train, test) GNU Radio recordings, made when missing."""
    train, test = out / "gnuradio" / "train", out / "gnuradio" / "test"
    script = str(ROOT / "scripts" / "gnuradio_recordings.py")
    py = "/usr/bin/python3"
    per_class = "40" if quick else "400"  # bursts of ~3 windows each: 1,000 windows per class
    make_train = [py, script, "sites", "--out", str(train), "--sites", "1"]
    make_train += ["--bursts-per-class", per_class, "--seed", "31"]
    make_test = [py, script, "test", "--out", str(test), "--seed", "32"]
    make_test += ["--bursts-per-class", "10" if quick else "60"]
    ok = train.exists() or _call(make_train, "gnuradio")
    ok = ok and (test.exists() or _call(make_test, "gnuradio"))
    return {"train": train, "test": test} if ok else None


def torchsig_sets(out: Path, quick: bool) -> dict[str, Path] | None:
    """(train, test) TorchSig files, made when missing."""
    sets = {}
    py, script = str(ROOT / ".venv-torchsig" / "bin" / "python"), "scripts/torchsig_recordings.py"
    for split, seed, n in (
        ("train", 41, 100 if quick else 1100),
        ("test", 42, 30 if quick else 300),
    ):
        where = out / "torchsig" / split
        made = (where / "torchsig.npz").exists() or _call(
            [py, script, "--out", str(where), "--per-class", str(n), "--seed", str(seed)],
            "torchsig",
        )
        if not made:
            return None
        sets[split] = where / "torchsig.npz"
    return sets


def scores(logits: np.ndarray, labels: np.ndarray, snr: np.ndarray, high: float) -> dict:
    """Accuracy overall, at SNR >= ``high`` and per 5 dB bin, with the counts."""
    right = logits.argmax(1) == labels
    out = {"records": int(right.size), "accuracy": float(right.mean())}
    out["high_snr"] = float(right[snr >= high].mean()) if (snr >= high).any() else None
    bins = np.floor(snr / 5) * 5
    out["per_snr"] = {f"{b:g}": float(right[bins == b].mean()) for b in np.unique(bins)}
    return out


def zero_shot(model: Path, test: Path, high: float, classes: tuple[str, ...] = ()) -> dict:
    """A finished run's model on a test set, as ``fedsb evaluate [--classes]`` scores it."""
    _, pred = evaluate_run(model, test, drop_unknown=True, classes=classes)
    return scores(pred.logits, pred.labels, pred.snr_db, high)


def zero_shot_rows(model: Path, test: Path, high: float) -> list[dict]:
    """Zero-shot over the test's classes; and over all the model's, where it knows more."""
    known = tuple(load_checkpoint(model / "model.safetensors")[1]["class_names"])
    rows = [{"what": f"zero-shot {model}", **zero_shot(model, test, high, TARGET)}]
    if known != TARGET:
        rows.append({"what": f"zero-shot {model}, all {len(known)} classes",
                     **zero_shot(model, test, high)})  # fmt: skip
    return rows


def _config(pretrained: Path, sets: dict, shots: int, seed: int) -> FinetuneConfig:
    cfg = load_config(FinetuneConfig, "finetune")
    overrides = [f"pretrained='{pretrained}'", "data.source='files'", "data.drop_unknown=true"]
    overrides += [f"data.classes='{','.join(TARGET)}'"]  # a broader backbone's head is cut
    overrides += [f"data.paths=['{sets['train']}']", f"data.test_paths=['{sets['test']}']"]
    overrides += [f"data.max_per_class={shots}", f"train.seed={seed}"]
    cfg = apply_overrides(cfg, [*overrides, "adapter.method='lora-sb'", "adapter.rank=16"])
    path = pretrained / "model.safetensors"  # its images, front-end included, are the run's
    images = from_dict(ImageConfig, images_meta(load_checkpoint(path)[1], path))
    return replace(cfg, data=replace(cfg.data, images=images))


def _epochs(records: int, batch: int, min_steps: int) -> int:
    return max(MIN_EPOCHS, math.ceil(min_steps / max(1, math.ceil(records / batch))))


def few_shot_lora(
    cfg: FinetuneConfig, classes, out: Path, cache: Path, high: float, min_steps: int
) -> dict:
    """LoRA-SB from the pretrained backbone on the capped records; scored on the test set."""
    shutil.rmtree(out, ignore_errors=True)
    probe = file_splits(cfg.data, cfg.data.generator.length, classes, SilentReporter())
    cfg = replace(
        cfg,
        train=replace(cfg.train, epochs=_epochs(len(probe.train), cfg.train.batch_size, min_steps)),
    )
    result = finetune(cfg, out, cache)
    return {**zero_shot(result.run, Path(cfg.data.test_paths[0]), high), "epochs": cfg.train.epochs}


def _iq_set(records, index: np.ndarray) -> ImageSet:
    return ImageSet(iq_to_tensor(records.read_iq(index)),
                    torch.from_numpy(records.records.labels[index]),
                    torch.from_numpy(records.records.snr_db[index].astype(np.float32)),
                    records.records.class_names)  # fmt: skip


def few_shot_cnn(
    cfg: FinetuneConfig, classes: tuple[str, ...], seed: int, high: float, min_steps: int
) -> dict:
    """The raw-IQ CNN from scratch on the records LoRA-SB trained on (same split, same caps)."""
    split = file_splits(cfg.data, cfg.data.generator.length, classes, SilentReporter())
    train, val, test = (_iq_set(split.records, ix) for ix in (split.train, split.val, split.test))
    torch.manual_seed(seed)
    model = IQCNN(num_classes=len(classes))
    epochs = _epochs(len(train), cfg.train.batch_size, min_steps)
    fit(model, list(model.parameters()), train, val, TrainConfig(epochs=epochs, seed=seed))
    logits = predict(model, test).double().numpy()
    return {**scores(logits, test.labels.numpy(), test.snr_db.numpy(), high), "epochs": epochs}


def _table(console: Console, results: dict) -> None:
    table = Table(title="transfer: accuracy % (overall / high SNR), independent test sets")
    for col in ("toolchain", "what", "records/class", "overall", "high SNR", "test records"):
        table.add_column(col, justify="left" if col in ("toolchain", "what") else "right")
    for chain, rows in results.items():
        for row in rows:
            high = "–" if row["high_snr"] is None else f"{100 * row['high_snr']:.1f}"
            table.add_row(chain, row["what"], str(row.get("shots", "0")),
                          f"{100 * row['accuracy']:.1f}", high, str(row["records"]))  # fmt: skip
    console.print(table)


def _earlier(path: Path, rerun: list[str]) -> dict[str, list[dict]]:
    """The rows of an earlier run in ``path`` for the toolchains not run again."""
    if not path.exists():
        return {}
    return {k: v for k, v in json.loads(path.read_text()).items() if k not in rerun}


def main(argv: list[str] | None = None) -> int:
    """Make the sets, score zero-shot and few-shot, print the table, write transfer.json."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/transfer"))
    p.add_argument("--sets", type=Path, help="where the data sets are kept (default: OUT)")
    p.add_argument("--pretrained", default="pretrain", help="preset, run dir or .safetensors")
    p.add_argument("--model", action="append", default=[], help="a finished run (repeatable)")
    p.add_argument("--shots", default="10,100,1000", help="comma list; empty: zero-shot only")
    p.add_argument("--toolchains", default="gnuradio,torchsig", help="comma list")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", type=Path, default=Path(".cache/fedsb"))
    p.add_argument("--quick", action="store_true", help="10 shots and small sets: a smoke run")
    a = p.parse_args(argv)
    shots = [10] if a.quick else [int(s) for s in a.shots.split(",") if s]
    steps = 20 if a.quick else MIN_STEPS
    pretrained = resolve_pretrained(a.pretrained, a.cache, SilentReporter()).parent  # its run
    models = [Path(m) for m in a.model] or [pretrained]
    makers = {"gnuradio": gnuradio_sets, "torchsig": torchsig_sets}
    wanted = [c for c in a.toolchains.split(",") if c]
    if not wanted or set(wanted) - set(makers):
        p.error(f"--toolchains: choose from {', '.join(makers)}")
    chains = {chain: makers[chain](a.sets or a.out, a.quick) for chain in wanted}
    a.out.mkdir(parents=True, exist_ok=True)
    results = _earlier(a.out / "transfer.json", wanted)
    for chain, sets in chains.items():
        if sets is None:
            continue
        high, rows = HIGH_SNR[chain], []
        results[chain] = rows
        for model in models:
            rows += zero_shot_rows(model, Path(sets["test"]), high)
        for n in shots:
            cfg = _config(pretrained, sets, n, a.seed)
            run = a.out / "runs" / f"{chain}-lora-sb-{n}"
            lora = few_shot_lora(cfg, TARGET, run, a.cache, high, steps)
            rows.append({"what": "LoRA-SB r=16", "shots": n, **lora})
            rows.append({"what": "raw-IQ CNN, scratch", "shots": n,
                         **few_shot_cnn(cfg, TARGET, a.seed, high, steps)})  # fmt: skip
            (a.out / "transfer.json").write_text(json.dumps(results, indent=2))  # so far
    (a.out / "transfer.json").write_text(json.dumps(results, indent=2))
    _table(Console(width=140), results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
