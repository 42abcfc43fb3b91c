"""The bad-input corpus: every CLI command that reads input, fed hostile and broken input.

Each case asserts what fedsb promises for bad input: exit code 2, one line on stderr that names
the file or key and the problem, no traceback, and every file that existed before unchanged.
The files are made by the factories in ``hostile.py`` into one session directory.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from fedsb.cli import main

from ..federated.conftest import (
    TINY_IMAGES,
    workspace,  # noqa: F401  (the tiny pretrained backbone)
)
from .hostile import FACTORIES, L, marker_of, records

SMALL_BUDGET = {"FEDSB_INPUT_BUDGET": "64M"}
TINY = tuple(arg for item in TINY_IMAGES for arg in ("--set", item))  # the tiny backbone's data


@dataclass(frozen=True)
class Case:
    """One hostile invocation: ``argv`` with ``{name}`` placeholders for corpus paths."""

    id: str
    argv: tuple[str, ...]
    expect: str  # regex the error line must match (besides naming ``needle``)
    needle: str | None = None  # literal text the line must hold (default: the first file's name)
    env: dict[str, str] = field(default_factory=dict)


def inspect_cases() -> list[Case]:
    """`fedsb data inspect FILE` on every hostile data file, with the problem it must name."""
    expect = {
        "garbage.npz": "not a readable .npz",
        "empty.npz": "not a readable .npz",
        "truncated.npz": "not a readable .npz",
        "weights.npz": "missing array 'iq'",
        "object.npz": "object|pickle",
        "bomb.npz": "budget.*FEDSB_INPUT_BUDGET",
        "version-string.npz": "format_version",
        "version-matrix.npz": "format_version",
        "version-future.npz": "newer than this fedsb",
        "duplicate-classes.npz": "bpsk.*(twice|duplicate)|(twice|duplicate).*bpsk",
        "labels-out-of-range.npz": "label",
        "labels-float.npz": "labels must be integers",
        "iq-real.npz": "iq must be complex",
        "iq-3d.npz": "iq",
        "iq-nan.npz": "NaN or Inf",
        "no-records.npz": "no records",
        "zero-length.npz": "0 samples",
        "labels-short.npz": "labels",
        "meta-short.npz": "snr_db",
        "info-bad-json.npz": "info is not valid JSON",
        "info-deep-json.npz": "info",
        "class-names-int.npz": "class_names",
        "sample-rate-negative.npz": "sample.rate",
        "sample-rate-nan.npz": "sample.rate",
        "sample-rate-vector.npz": "sample.rate",
        "[bold]marked.npz": "not a readable .npz",
        "folder.npz": "no SigMF recordings",
        "malicious.pkl": "refused.*posix.system|refused.*os.system",
        "malicious-eval.pkl": "refused.*builtins.eval",
        "malicious.dat": "refused.*system",
        "list.pkl": "not a RadioML 2016 pickle.*got list",
        "garbage.pkl": "not a readable pickle",
        "empty.pkl": "not a readable pickle|empty",
        "empty-dict.pkl": "empty dict",
        "bad-key.pkl": "key 'BPSK' is not",
        "bad-shape.pkl": r"shape \(1, 8\)",
        "lengths-differ.pkl": "different record lengths",
        "unknown-label.pkl": "unknown label 'WARP9'",
        "object-array.pkl": "floats|refused",
        "nan.pkl": "NaN or Inf",
        "string-values.pkl": "not a RadioML 2016 pickle",
        "garbage.h5": "not a readable HDF5",
        "empty.hdf5": "not a readable HDF5",
        "no-xyz.h5": "no dataset",
        "wrong-shapes.h5": "not a RadioML 2018 file",
        "not-one-hot.h5": "not one-hot",
        "string-x.h5": "X.*(dtype|type|string)",
        "vlen-y.h5": "Y.*(dtype|type)",
        "group-x.h5": "no dataset",
        "nan.h5": "NaN or Inf",
        "z-short.h5": "not a RadioML 2018 file",
        "invalid-json.sigmf-meta": "invalid JSON",
        "meta-list.sigmf-meta": "no 'global' object",
        "no-global.sigmf-meta": "no 'global' object",
        "no-datatype.sigmf-meta": "missing 'core:datatype'",
        "odd-datatype.sigmf-meta": "unknown core:datatype 'cq99'",
        "rate-string.sigmf-meta": "core:sample_rate",
        "rate-negative.sigmf-meta": "core:sample_rate",
        "channels-zero.sigmf-meta": "core:num_channels",
        "no-labels.sigmf-meta": "no annotations with core:label",
        "past-end.sigmf-meta": "ends at sample",
        "negative-start.sigmf-meta": "core:sample_start",
        "string-count.sigmf-meta": "core:sample_(start|count)",
        "annotations-dict.sigmf-meta": "'annotations' must be a list",
        "unknown-label.sigmf-meta": "unknown label 'Mystery-9'",
        "overlap.sigmf-meta": "overlap",
        "deep-json.sigmf-meta": "nest|deep",
        "dtypes-range.sigmf-meta": "power",
        "dtypes-object.sigmf-meta": "power",
        "dtypes-number.sigmf-meta": "power",
        "class-names-string.sigmf-meta": "fedsb:class_names",
        "not-utf8.sigmf-meta": "metadata",
        "no-data.sigmf-meta": "no data file",
        "orphan.sigmf-data": "no metadata file",
        "checksum.sigmf-meta": "hash",
        "data-truncated.sigmf-meta": "truncated data file",
        "data-empty.sigmf-meta": "empty recording",
        "no-recordings": "no SigMF recordings",
        "mixed-rates": "different sample rates",
        "corrupt.sigmf": "cannot read SigMF",
        "escape.sigmf": r"\.\./\.\./escaped",
        "absolute.sigmf": "absolute",
        "symlink.sigmf": "link",
        "hardlink.sigmf": "link",
        "empty.sigmf": "no .*(recording|metadata|sigmf-meta)",
    }
    named = {  # the error names the file at fault, which is not the one given
        "data-truncated.sigmf-meta": "data-truncated.sigmf-data",
        "data-empty.sigmf-meta": "data-empty.sigmf-data",
    }
    cases = [
        Case(
            f"inspect:{name}",
            ("data", "inspect", f"{{{name}}}", "--length", str(L)),
            problem,
            named.get(name),
        )
        for name, problem in expect.items()
    ]
    cases += [
        Case(
            "inspect:markup-label",
            ("data", "inspect", "{markup-label.sigmf-meta}", "--length", str(L)),
            r"unknown label '\[/x\]bpsk'",
        ),
        Case(
            "inspect:emoji-label",
            ("data", "inspect", "{emoji-label.sigmf-meta}", "--length", str(L)),
            "unknown label ':thumbs_up:'",
        ),
        Case(
            "inspect:bomb.sigmf.gz",
            ("data", "inspect", "{bomb.sigmf.gz}"),
            "budget",
            env=SMALL_BUDGET,
        ),
        Case("inspect:bomb.h5", ("data", "inspect", "{bomb.h5}"), "budget", env=SMALL_BUDGET),
        Case(
            "inspect:missing", ("data", "inspect", "{dir}/gone.npz"), "file not found", "gone.npz"
        ),
        Case(
            "inspect:missing-markup",
            ("data", "inspect", "{dir}/[/red]gone[bold].npz"),
            "file not found",
            "[/red]gone[bold].npz",
        ),
        Case(
            "inspect:unknown-type",
            ("data", "inspect", "{dir}/notes.csv"),
            "unknown file type",
            "notes.csv",
        ),
        Case(
            "inspect:length-zero",
            ("data", "inspect", "{mixed-rates}", "--length", "0"),
            "length",
            "mixed-rates",
        ),
        Case(
            "inspect:rml2018-order",
            ("data", "inspect", "{weights.npz}", "--rml2018-order", "sorted"),
            "unknown order 'sorted'",
            "sorted",
        ),
        Case(
            "inspect:bad-budget",
            ("data", "inspect", "{weights.npz}"),
            "FEDSB_INPUT_BUDGET",
            "FEDSB_INPUT_BUDGET",
            env={"FEDSB_INPUT_BUDGET": "lots"},
        ),
    ]
    return cases


PREVIEW = [
    "malicious.pkl",
    "bomb.npz",
    "iq-nan.npz",
    "escape.sigmf",
    "string-x.h5",
    "overlap.sigmf-meta",
]
EVALUATE = [
    "malicious.pkl",
    "bomb.npz",
    "duplicate-classes.npz",
    "version-string.npz",
    "symlink.sigmf",
    "vlen-y.h5",
    "deep-json.sigmf-meta",
    "dtypes-object.sigmf-meta",
    "[bold]marked.npz",
]


def reuse_cases() -> list[Case]:
    """The same files through `data preview` and `evaluate --data`."""
    by_id = {c.id: c for c in inspect_cases()}
    out = []
    for name in PREVIEW:
        base = by_id[f"inspect:{name}"]
        argv = ("data", "preview", f"{{{name}}}", "--out", "{dir}/preview.png", "--length", str(L))
        out.append(Case(f"preview:{name}", argv, base.expect))
    for name in EVALUATE:
        base = by_id[f"inspect:{name}"]
        argv = ("evaluate", "--run", "{run}", "--data", f"{{{name}}}", "--out", "{dir}/e.json")
        out.append(Case(f"evaluate:{name}", argv, base.expect, base.needle or name))
    return out


def data_cases() -> list[Case]:
    """The same files as the training data of `run --dry-run`, `pretrain` and `finetune`."""
    by_id = {c.id: c for c in inspect_cases()}
    out = []
    for name in EVALUATE:
        base = by_id[f"inspect:{name}"]
        needle = base.needle or name
        argv = ("run", "--dry-run", "--data", f"{{{name}}}", "--length", str(L))
        out.append(Case(f"run-data:{name}", argv, base.expect, needle))
        argv = ("pretrain", "--data", f"{{{name}}}", "--length", str(L), "--out", "{dir}/p")
        out.append(Case(f"pretrain-data:{name}", argv, base.expect, needle))
    out += [
        Case(
            "run-data:no-match",
            ("run", "--dry-run", "--data", "{dir}/nowhere/*.npz"),
            "matches no file",
            "nowhere",
        ),
        Case(
            "run-data:partition-key",
            ("run", "--dry-run", "--data", "{good.npz}", "--length", "256")
            + ("--partition-by", "core:nosuch"),
            "no record has it",
            "core:nosuch",
        ),
        Case(
            "run-data:too-short",
            ("run", "--dry-run", "--data", "{good.npz}", "--length", "1024"),
            "256 samples long, shorter than the model's 1024",
            "good.npz",
        ),
        Case(
            "finetune-data:backbone-length",
            ("finetune", "--data", "{good.npz}", "--pretrained", "{pre}", *TINY, "--length", "1024")
            + ("--out", "{dir}/f"),
            "pretrained on 256-sample records, not 1024",
            "--length 256",
        ),
        Case(
            "finetune-data:classes-not-in-backbone",
            ("finetune", "--data", "{good.npz}", "--pretrained", "{pre}", *TINY, "--length", "256")
            + ("--out", "{dir}/f"),
            r"none of the files' classes \(8psk, wbfm\) is among the backbone's",
            "8psk",
        ),
        Case(
            "run-data:classes-not-in-backbone",
            ("run", "--data", "{good.npz}", "--set", "pretrained='{pre}'", *TINY, "--length")
            + ("256", "--out", "{dir}/r"),
            r"none of the files' classes \(8psk, wbfm\) is among the backbone's",
            "8psk",
        ),
        Case(
            "pretrain-data:val-without-data",
            ("pretrain", "--val-data", "{good.npz}", "--out", "{dir}/p"),
            "source = 'generator'",
            "data.paths",
        ),
    ]
    return out


CONFIG_VALUES = {
    "data.source='tape'": "data.source",
    "data.val_fraction=1.5": "data.val_fraction",
    "data.test_fraction=nan": "data.test_fraction",
    "data.max_records=-1": "data.max_records",
    "data.rml2018_order='alphabetical'": "data.rml2018_order",
    "data.classes='found'": "data.classes",
    "partition.dirichlet_alpha=nan": "partition.dirichlet_alpha",
    "partition.snr_window_db=nan": "partition.snr_window_db",
    "partition.snr_window_db=-3": "partition.snr_window_db",
    "client.lr=nan": "client.lr",
    "client.lr=inf": "client.lr",
    "client.lr=0": "client.lr",
    "client.head_lr=-1": "client.head_lr",
    "client.head_lr=nan": "client.head_lr",
    "client.basis_payload='int4'": "client.basis_payload",
    "partition.seed=-1": "partition.seed",
    "seed=-1": "seed",
    "data.seed=-4": "data.seed",
    "rounds=0": "rounds",
    "rounds='many'": "rounds",
    "rounds=2.5": "rounds",
    "method='bogus'": "method",
    "nosuch.key=1": "nosuch.key: unknown key",
    "novalue": "expected key=value",
    "partition.clients=0": "clients",
    "partition.records_per_client=-1": "records_per_client",
    "client.batch_size=0": "batch_size",
    "client.local_epochs=0": "local_epochs",
    "server.fraction=2": "fraction",
    "server.fraction=nan": "server.fraction",
    "server.trim=0.7": "trim",
    "dp.delta=1.5": "delta",
    "dp.epsilon=nan": "dp.epsilon",
    "engine='warp'": "engine",
    "init_source='moon'": "init_source",
    "data.generator.length=0": "length",
    "data.images.size=0": "size",
    "data.images.frontend.carrier='pll'": "data.images.frontend.carrier",
    "data.images.channels=['nosuch']": "nosuch",
    "data.classes='nosuch'": "nosuch",
    "adapter.rank=0": "adapter.rank",
    "data.generator.snr_db=[nan, 1.0]": "snr_db",
    "workers=0": "workers",
    "attack.kind='meteor'": "attack.kind",
    "server.aggregation='vote'": "aggregation",
    "data.generator.hardware.adc_bits=[4, 20]": "adc_bits",
    "data.generator.hardware.amplifier_probability=1.5": "amplifier_probability",
    "data.generator.hardware.backoff_db=[nan, 1.0]": "backoff_db",
    "data.classes='bpsk,nosuch'": "nosuch",
}


def config_cases() -> list[Case]:
    """Bad values through `run --dry-run --set`, config files, and the other commands' options."""
    cases = [
        Case(f"set:{text}", ("run", "--dry-run", "--set", text), "", key)
        for text, key in CONFIG_VALUES.items()
    ]
    files = {
        "garbage.toml": ("invalid TOML", None),
        "binary.toml": ("invalid TOML|cannot read", None),
        "unknown-key.toml": ("unknown key", "warp_drive"),
        "wrong-type.toml": ("expected an integer", "rounds"),
        "deep.toml": ("invalid TOML|nest|deep", None),
        "config-dir.toml": ("config", None),
        "nan.toml": ("client.lr", None),
    }
    for name, (problem, needle) in files.items():
        cases.append(
            Case(
                f"config:run:{name}",
                ("run", "--dry-run", "--config", f"{{{name}}}"),
                problem,
                needle,
            )
        )
    cases += [
        Case(
            "config:pretrain:garbage",
            ("pretrain", "--config", "{garbage.toml}", "--out", "{dir}/p"),
            "invalid TOML",
            "garbage.toml",
        ),
        Case(
            "config:finetune:unknown",
            ("finetune", "--config", "{unknown-key.toml}", "--out", "{dir}/f"),
            "unknown key",
            "warp_drive",
        ),
        Case(
            "config:model-info:garbage",
            ("model", "info", "--config", "{garbage.toml}"),
            "invalid TOML|cannot read",
            "garbage.toml",
        ),
        Case(
            "config:generate:garbage",
            ("data", "generate", "--config", "{garbage.toml}", "--out", "{dir}/g.npz"),
            "invalid TOML",
            "garbage.toml",
        ),
        Case(
            "config:sweep:garbage",
            ("sweep", "--config", "{garbage.toml}", "--out", "{dir}/s"),
            "invalid TOML",
            "garbage.toml",
        ),
        Case("model-info:rank", ("model", "info", "--rank", "100000"), "larger", "adapter.rank"),
        Case(
            "model-info:targets",
            ("model", "info", "--set", "adapter.targets=['nosuch*']"),
            "no .*layer matches",
            "adapter.targets",
        ),
        Case(
            "model-info:set", ("model", "info", "--set", "adapter.alpha=nan"), "", "adapter.alpha"
        ),
        Case(
            "pretrain:arch",
            ("pretrain", "--out", "{dir}/p", "--set", "model.arch='cnn'"),
            "'cnn'",
            "model.arch",
        ),
        Case(
            "pretrain:epochs",
            ("pretrain", "--out", "{dir}/p", "--set", "train.epochs=0"),
            "epochs",
            "train",
        ),
        Case(
            "pretrain:lr", ("pretrain", "--out", "{dir}/p", "--set", "train.lr=nan"), "", "train.lr"
        ),
        Case(
            "finetune:method",
            ("finetune", "--method", "bogus", "--out", "{dir}/f"),
            "'bogus' is not one of",
            "bogus",
        ),
        Case(
            "finetune:pretrained",
            ("finetune", "--pretrained", "{dir}/nowhere.bin", "--out", "{dir}/f"),
            "expected a run directory",
            "nowhere.bin",
        ),
        Case("finetune:rank", ("finetune", "--rank", "0", "--out", "{dir}/f"), "", "adapter.rank"),
        Case(
            "finetune:rank-huge",
            ("finetune", "--rank", "100000", "--pretrained", "{pre}", "--out", "{dir}/f", *TINY),
            "larger than every target layer",
            "adapter.rank",
        ),
        Case(
            "generate:per-class-huge",
            ("data", "generate", "--per-class", "100000000", "--out", "{dir}/g.npz"),
            "budget.*FEDSB_INPUT_BUDGET",
            "g.npz",
        ),
        Case("sweep:ranks", ("sweep", "--ranks", "4,x", "--out", "{dir}/s"), "integers", "--ranks"),
        Case(
            "generate:snr",
            ("data", "generate", "--snr", "loud", "--out", "{dir}/g.npz"),
            "expected LO:HI",
            "--snr",
        ),
        Case(
            "generate:classes",
            ("data", "generate", "--classes", "nosuch", "--out", "{dir}/g.npz"),
            "",
            "nosuch",
        ),
        Case(
            "generate:per-class",
            ("data", "generate", "--per-class", "0", "--out", "{dir}/g.npz"),
            "",
            "per_class",
        ),
        Case(
            "generate:length",
            ("data", "generate", "--length", "0", "--out", "{dir}/g.npz"),
            "",
            "length",
        ),
        Case(
            "generate:format",
            ("data", "generate", "--format", "xyz", "--out", "{dir}/g.npz"),
            "format",
            "xyz",
        ),
        Case(
            "generate:extension",
            ("data", "generate", "--out", "{dir}/g.csv"),
            "output format",
            "g.csv",
        ),
        Case(
            "preview:channels",
            ("data", "preview", "{weights.npz}", "--channels", "nosuch", "--out", "{dir}/p.png"),
            "",
            "nosuch",
        ),
        Case(
            "preview:size",
            ("data", "preview", "{weights.npz}", "--size", "0", "--out", "{dir}/p.png"),
            "",
            "size",
        ),
    ]
    return cases


def output_cases() -> list[Case]:
    """Unusable --out targets, and outputs that already hold a run."""
    tiny = ("--set", "rounds=1")
    return [
        Case(
            "out:generate-dir",
            ("data", "generate", "--per-class", "1", "--length", "64", "--out", "{out-dir.npz}"),
            "",
            "out-dir.npz",
        ),
        Case(
            "out:generate-under-file",
            ("data", "generate", "--per-class", "1", "--length", "64", "--out", "{a-file}/x.npz"),
            "cannot write",
            "a-file",
        ),
        Case("out:run-file", ("run", "--out", "{a-file}", *tiny), "file", "a-file"),
        Case(
            "out:run-under-file",
            ("run", "--out", "{a-file}/run", *tiny),
            "cannot write|file",
            "a-file",
        ),
        Case("out:run-finished", ("run", "--out", "{run}", *tiny), "already holds a run", "run"),
        Case(
            "out:run-methods-finished",
            ("run", "--method", "fedsb,fedit", "--out", "{run}", *tiny),
            "already holds a run",
            "run",
        ),
        Case(
            "out:finetune-file",
            ("finetune", "--pretrained", "{pre}", "--out", "{a-file}"),
            "file",
            "a-file",
        ),
        Case(
            "out:finetune-methods-finished",
            ("finetune", "--method", "lora-sb,lora", "--pretrained", "{pre}", "--out", "{run}"),
            "already holds a run",
            "run",
        ),
        Case("out:pretrain-file", ("pretrain", "--out", "{a-file}"), "file", "a-file"),
        Case("out:sweep-file", ("sweep", "--out", "{a-file}"), "file", "a-file"),
        Case(
            "out:evaluate-under-file",
            ("evaluate", "--run", "{run}", "--data", "{good.npz}", "--out", "{a-file}/e.json"),
            "cannot write",
            "a-file",
        ),
        Case(
            "out:preview-under-file",
            ("data", "preview", "{good.npz}", "--out", "{a-file}/p.png"),
            "cannot write",
            "a-file",
        ),
        Case(
            "out:preview-format",
            ("data", "preview", "{good.npz}", "--out", "{dir}/p.txt"),
            "png|pdf|format",
            "p.txt",
        ),
        Case(
            "out:resume-and-method",
            ("run", "--resume", "{run}", "--method", "fedit"),
            "--resume",
            "--resume",
        ),
        Case("out:run-no-out", ("run", "--set", "rounds=1"), "--out", "--out"),
    ]


RUN_MUTATIONS = {
    "rows-not-objects": ("metrics.jsonl", b'[1, 2]\n"x"\n3\n', "metrics.jsonl"),
    "rows-torn-middle": (
        "metrics.jsonl",
        b'{"round": 0, "stage": "init"}\n{"rou\n{"round": 1}\n',
        "metrics.jsonl",
    ),
    "predictions-garbage": ("predictions.npz", b"not an npz at all", "predictions.npz"),
    "evaluation-garbage": ("evaluation.json", b"{oops", "evaluation.json"),
    "evaluation-deep": ("evaluation.json", b"[" * 100_000 + b"]" * 100_000, "evaluation.json"),
    "evaluation-list": ("evaluation.json", b"[1, 2, 3]", "evaluation.json"),
    "config-garbage": ("config.toml", b"rounds = = 3", "config.toml"),
    "partition-garbage": ("partition.json", b"\x00\x01", "partition.json"),
    "partition-object": ("partition.json", b'{"clients": 3}', "partition.json"),
}


def run_dir_cases() -> list[Case]:
    """`report`, `paper`, `evaluate --run` and `run --resume` on broken run directories."""
    cases = []
    for name, (_, _, needle) in RUN_MUTATIONS.items():
        cases.append(Case(f"report:{name}", ("report", f"{{run:{name}}}"), "", needle))
    cases += [
        Case("paper:rows-not-objects", ("paper", "{run:rows-not-objects}"), "", "metrics.jsonl"),
        Case(
            "paper:predictions-garbage",
            ("paper", "{run:predictions-garbage}"),
            "",
            "predictions.npz",
        ),
        Case(
            "report:predictions-no-logits",
            ("report", "{run:predictions-no-logits}"),
            "logits",
            "predictions.npz",
        ),
        Case(
            "report:predictions-shape", ("report", "{run:predictions-shape}"), "", "predictions.npz"
        ),
        Case(
            "report:predictions-object",
            ("report", "{run:predictions-object}"),
            "",
            "predictions.npz",
        ),
        Case("report:empty-dir", ("report", "{no-recordings}"), "no run", "no-recordings"),
        Case("report:missing", ("report", "{dir}/no-such-run"), "", "no-such-run"),
        Case("report:file", ("report", "{a-file}"), "", "a-file"),
        Case(
            "evaluate:no-run",
            ("evaluate", "--run", "{dir}/no-such-run", "--data", "{good.npz}"),
            "no such run",
            "no-such-run",
        ),
        Case(
            "evaluate:classes-unknown",
            ("evaluate", "--run", "{run}", "--data", "{good.npz}", "--classes", "bpsk,<b>x</b>"),
            "unknown class",
            "<b>x</b>",
        ),
        Case(
            "evaluate:classes-not-in-model",
            ("evaluate", "--run", "{run}", "--data", "{good.npz}", "--classes", "ook"),
            "not among the model's classes",
            "ook",
        ),
        Case(
            "evaluate:rml2018-order",
            ("evaluate", "--run", "{run}", "--data", "{good.npz}", "--rml2018-order", "<b>x</b>"),
            "unknown order",
            "<b>x</b>",
        ),
        Case(
            "evaluate:glob-matches-nothing",
            ("evaluate", "--run", "{run}", "--data", "{dir}/none-*.npz"),
            "matches no file",
            "none-*.npz",
        ),
        Case(
            "evaluate:no-model",
            ("evaluate", "--run", "{no-recordings}", "--data", "{good.npz}"),
            "",
            "model.safetensors",
        ),
        Case(
            "evaluate:model-garbage",
            ("evaluate", "--run", "{run:model-garbage}", "--data", "{good.npz}"),
            "not a readable checkpoint",
            "model.safetensors",
        ),
        Case(
            "evaluate:model-nan",
            ("evaluate", "--run", "{run:model-nan}", "--data", "{good.npz}"),
            "NaN or Inf",
            "model.safetensors",
        ),
        Case(
            "evaluate:model-header-bomb",
            ("evaluate", "--run", "{run:model-header-bomb}", "--data", "{good.npz}"),
            "",
            "model.safetensors",
        ),
        Case(
            "evaluate:model-no-meta",
            ("evaluate", "--run", "{run:model-no-meta}", "--data", "{good.npz}"),
            "",
            "model.safetensors",
        ),
        Case(
            "evaluate:model-wrong-tensors",
            ("evaluate", "--run", "{run:model-wrong-tensors}", "--data", "{good.npz}"),
            "",
            "model.safetensors",
        ),
        Case(
            "evaluate:config-garbage",
            ("evaluate", "--run", "{run:config-garbage}", "--data", "{good.npz}"),
            "",
            "config.toml",
        ),
        Case(
            "evaluate:wrong-classes",
            ("evaluate", "--run", "{run}", "--data", "{good.npz}", "--out", "{dir}/e.json"),
            "classes the model",
            "good.npz",
        ),
        Case(
            "resume:missing",
            ("run", "--resume", "{dir}/no-such-run"),
            "nothing to resume",
            "no-such-run",
        ),
        Case(
            "resume:empty",
            ("run", "--resume", "{no-recordings}"),
            "nothing to resume",
            "no-recordings",
        ),
        Case(
            "resume:state-garbage",
            ("run", "--resume", "{run:state-garbage}"),
            "not a readable checkpoint",
            "state.safetensors",
        ),
        Case(
            "resume:config-garbage", ("run", "--resume", "{run:config-garbage}"), "", "config.toml"
        ),
        Case(
            "resume:rows-torn-middle",
            ("run", "--resume", "{run:rows-torn-middle}"),
            "line 2",
            "metrics.jsonl",
        ),
    ]
    return cases


CASES = (
    inspect_cases()
    + reuse_cases()
    + data_cases()
    + config_cases()
    + output_cases()
    + run_dir_cases()
)


def _config_files(d: Path) -> None:
    (d / "garbage.toml").write_text("rounds = = 3\n")
    (d / "binary.toml").write_bytes(b"\xff\xfe\x00\x01")
    (d / "unknown-key.toml").write_text("warp_drive = true\n")
    (d / "wrong-type.toml").write_text('rounds = "three"\n')
    (d / "deep.toml").write_text("x = " + "[" * 50_000 + "]" * 50_000 + "\n")
    (d / "config-dir.toml").mkdir()
    (d / "nan.toml").write_text("[client]\nlr = nan\n")


def _mutate_runs(d: Path, run: Path) -> None:
    """One copy of the finished run per mutation, each with one file broken."""
    for name, (member, content, _) in RUN_MUTATIONS.items():
        shutil.copytree(run, d / f"run-{name}")
        (d / f"run-{name}" / member).write_bytes(content)
    extra = {
        "predictions-no-logits": lambda p: np.savez(p / "predictions.npz", labels=np.zeros(3)),
        "predictions-shape": lambda p: np.savez(
            p / "predictions.npz",
            logits=np.zeros((4, 3, 2)),
            labels=np.zeros(4),
            snr_db=np.zeros(4),
            class_names=np.asarray(["a", "b", "c"]),
        ),
        "predictions-object": lambda p: np.savez(
            p / "predictions.npz", logits=np.asarray([None, 1], dtype=object)
        ),
        "model-garbage": lambda p: (p / "model.safetensors").write_bytes(b"\x10" * 64),
        "model-header-bomb": lambda p: (p / "model.safetensors").write_bytes(
            (10**15).to_bytes(8, "little") + b"{}"
        ),
        "model-no-meta": lambda p: save_file(
            {"w": np.zeros(3, np.float32)}, str(p / "model.safetensors")
        ),
        "state-garbage": lambda p: (p / "state.safetensors").write_bytes(b"garbage" * 9),
    }
    for name, mutate in extra.items():
        shutil.copytree(run, d / f"run-{name}")
        mutate(d / f"run-{name}")
    _broken_models(d, run)


def _broken_models(d: Path, run: Path) -> None:
    """A merged model with a NaN weight, and one whose tensors are not the architecture's."""
    from fedsb.models.checkpoint import load_checkpoint, save_checkpoint

    state, meta = load_checkpoint(run / "model.safetensors")
    for name, new in (
        (
            "model-nan",
            {
                k: v.clone().fill_(float("nan")) if i == 0 else v
                for i, (k, v) in enumerate(state.items())
            },
        ),
        ("model-wrong-tensors", {"stem.conv.weight": next(iter(state.values()))[:1]}),
    ):
        shutil.copytree(run, d / f"run-{name}")
        save_checkpoint(d / f"run-{name}" / "model.safetensors", new, meta)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory, workspace) -> dict[str, Path]:  # noqa: F811
    """Every corpus file by name, plus ``dir``, a finished ``run`` and its broken copies."""
    d = tmp_path_factory.mktemp("corpus")
    paths = {name: make(d) for name, make in FACTORIES.items()}
    _config_files(d)
    from fedsb.io import save_records

    save_records(records(length=256, classes=("8psk", "wbfm")), d / "good.npz")
    (d / "a-file").write_text("I am a file")
    (d / "notes.csv").write_text("1,2\n")
    (d / "out-dir.npz").mkdir()
    workspace.run(d / "run")
    _mutate_runs(d, d / "run")
    paths.update({p.name: p for p in d.iterdir() if p.name not in paths})
    paths.update({f"run:{p.name[4:]}": p for p in d.iterdir() if p.name.startswith("run-")})
    paths["dir"], paths["pre"] = d, workspace.pre
    return paths


def _checksums(root: Path) -> dict[Path, str]:
    return {
        p: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def _argv(case: Case, corpus: dict[str, Path]) -> list[str]:
    out = []
    for arg in case.argv:
        for name, path in corpus.items():
            arg = arg.replace(f"{{{name}}}", str(path))
        assert "{" not in arg, f"unresolved placeholder in {arg}"
        out.append(arg)
    return out


def _needle(case: Case) -> str:
    if case.needle is not None:
        return case.needle
    first = next(a for a in case.argv if a.startswith("{"))
    return first.strip("{}").split("/")[-1]


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 150 and len({c.id for c in CASES}) == len(CASES)
    commands = {
        c.argv[0] if c.argv[0] not in ("data", "model") else " ".join(c.argv[:2]) for c in CASES
    }
    readers = {
        "data inspect",
        "data preview",
        "data generate",
        "model info",
        "pretrain",
        "finetune",
        "run",
        "sweep",
        "report",
        "paper",
        "evaluate",
    }
    assert readers <= commands


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_exit_2_and_damages_nothing(
    case: Case, corpus: dict[str, Path], capsys, monkeypatch, tmp_path
) -> None:
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("COLUMNS", "300")
    monkeypatch.chdir(tmp_path)  # built-in defaults, and any stray output lands here
    before = _checksums(corpus["dir"])
    with pytest.raises(SystemExit) as exit_info:
        main(_argv(case, corpus))
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.strip()]
    assert exit_info.value.code == 2, err
    assert "Traceback" not in err, err
    # progress bars may precede it; the error itself is one line, the last one
    assert lines and lines[-1].startswith("error: "), err
    assert sum(x.startswith("error") for x in lines) == 1, err
    assert _needle(case) in lines[-1], err
    assert re.search(case.expect, lines[-1]), err
    after = _checksums(corpus["dir"])
    assert {p: after.get(p) for p in before} == before, "an existing file changed"
    ran = [marker_of(corpus[n]) for n in corpus if n.startswith("malicious")]
    assert not [m for m in ran if m.exists()], "a data file ran code"


def test_no_malicious_pickle_ran(corpus: dict[str, Path], capsys) -> None:
    """Reading each payload (through every reader path) creates no marker file."""
    for name in ("malicious.pkl", "malicious-eval.pkl", "malicious.dat"):
        with pytest.raises(SystemExit):
            main(["data", "inspect", str(corpus[name])])
        assert not marker_of(corpus[name]).exists()
    capsys.readouterr()
    assert json.dumps(sorted(p.name for p in corpus["dir"].glob("*.RAN"))) == "[]"
