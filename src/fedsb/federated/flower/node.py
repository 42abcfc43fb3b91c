"""A node's work: rebuild its share of the task, then call the shared client code.

A node holds only its own data: with a ``data-path`` in its node config, those files (read with
the run's data settings and split locally by group, ``sites.site_data``: the partition config
is not used); otherwise its partition, ``plan_partition(...)[partition-id]`` (generated or
loaded from its cache dir) or, for a simulation on the user's files, its share of them. It
also holds the adapted backbone (``resolve_pretrained`` + ``adapted_model``) and, for LoRA-SB,
the basis the server sent once (kept in ``context.state``). Training and round 0 are
``client.client_step`` and ``client_init_step``, exactly as in the embedded engine;
``calibrate`` computes the validation logits that temperature scaling's steps reuse;
``describe`` and ``evaluate`` serve a run with its data at the sites (``site_eval``).

Built parts are cached per process (``_built`` and ``_data``: pure builders behind
``functools.lru_cache``, keyed by the run config's text, the partition id, the cache dir and
the data paths): Ray actors of the simulation serve many messages, while a deployment
SuperNode starts a fresh ClientApp process per message and rebuilds (cheap: the data come from
the on-disk cache). ``client_app`` imports this module (and torch) only when a training message
arrives, so a node answers the server's partition-id query quickly.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict
from torch import nn

from ...data.file_sets import file_clients
from ...data.imageset import ImageSet
from ...data.partition import ClientData, build_client_data, plan_partition
from ...errors import ConfigError, DataError
from ...models.lora_sb_init import load_lora_sb_basis
from ...reporter import SilentReporter
from ...training.loop import predict
from ...training.pretrain import resolve_pretrained
from ..client import client_step
from ..config import RunConfig
from ..methods import method
from ..payload import decode
from ..round0 import client_round0
from ..site_eval import split_sums
from ..sites import parse_paths, site_data, site_row
from ..states import load_global
from ..task import adapted_model, has_lora_sb
from . import messages as m

_DATA_SLOTS = 4  # client datasets kept per process (a Ray actor may serve every client)
RESIDUALS = "payload-residuals"  # context.state: what the client keeps between rounds (int8)


def _cache_dir(context: Context, conf: ConfigRecord) -> Path | None:
    value = context.node_config.get(m.CACHE_DIR) or conf.get(m.CACHE_DIR) or ""
    return Path(str(value)) if value else None


def site_paths(context: Context) -> tuple[str, ...]:
    """This node's own data files (``data-path`` of its node config); () when it has none."""
    value = context.node_config.get(m.DATA_PATH)
    return () if value is None else parse_paths(value, m.DATA_PATH)


def _client_data(
    cfg: RunConfig, pid: int, cache_dir: Path | None, classes: tuple[str, ...]
) -> ClientData:
    """Partition ``pid`` of the run's partition: generated, or its share of the run's files."""
    if cfg.data.from_files:
        length = cfg.data.generator.length
        clients, _ = file_clients(
            cfg.data, cfg.partition, length, classes, cache_dir, SilentReporter()
        )
        return clients[pid]
    plans = plan_partition(cfg.partition, cfg.data)
    return build_client_data(plans[pid], cfg.partition, cfg.data, cache_dir)


@lru_cache(maxsize=1)
def _built(text: str, cache_dir: Path | None) -> tuple[RunConfig, nn.Module, tuple[str, ...]]:
    """(config, adapted model, the backbone's class names) of a run config: one run at a time."""
    cfg = m.parse_config(text)
    checkpoint = resolve_pretrained(cfg.pretrained, cache_dir, SilentReporter())
    model, meta = adapted_model(cfg, checkpoint)
    return cfg, model, tuple(meta["class_names"])


@lru_cache(maxsize=_DATA_SLOTS)
def _data(
    text: str, pid: int, cache_dir: Path | None, classes: tuple[str, ...], site: tuple[str, ...]
) -> ClientData:
    cfg = m.parse_config(text)
    if not site:
        return _client_data(cfg, pid, cache_dir, classes)
    try:
        return site_data(cfg, site, classes, cache_dir, SilentReporter())
    except DataError as exc:
        raise DataError(None, f"{m.DATA_PATH}: {exc}") from None


def parts(
    text: str, pid: int, cache_dir: Path | None, site: tuple[str, ...] = ()
) -> tuple[RunConfig, nn.Module, ClientData]:
    """(config, adapted model, this node's train/val/test data).

    Built once per config (the model) and per client (the data, the last few kept); ``site``:
    the node's own files, instead of its partition.
    """
    cfg, model, class_names = _built(text, cache_dir)
    data = _data(text, pid, cache_dir, class_names, site)
    if data.train.class_names != class_names:
        raise ConfigError("data.classes differ from the classes the backbone was trained on")
    return cfg, model, data


def _node_parts(msg: Message, context: Context, pid: int):
    conf = msg.content[m.CONFIG]
    _check_client(conf, pid)
    return parts(str(conf["run-config"]), pid, _cache_dir(context, conf), site_paths(context))


def _load_basis(model: nn.Module, msg: Message, context: Context, kind: str) -> None:
    """Keep the basis the server sent (first message to this node) and load it into the model.

    It was sent in ``kind`` (``client.basis_kind``); the node keeps it as sent.
    """
    if m.BASIS in msg.content:
        context.state[m.BASIS] = msg.content[m.BASIS]
    if not has_lora_sb(model):
        return
    if m.BASIS not in context.state:
        raise ConfigError("no LoRA-SB basis on this node yet (the server resends it)")
    wire = m.from_record(context.state[m.BASIS])
    load_lora_sb_basis(model, decode(wire, kind))  # then keys, shapes, finiteness


def _check_client(conf: ConfigRecord, pid: int) -> None:
    if int(conf["client"]) != pid:
        raise ConfigError(f"message for client {conf['client']} reached partition-id {pid}")


def _load_sent(msg: Message, context: Context, pid: int) -> tuple[nn.Module, ClientData]:
    """This node's model, with the sent global state loaded, and its data."""
    torch.set_num_threads(1)
    cfg, model, data = _node_parts(msg, context, pid)
    _load_basis(model, msg, context, cfg.client.basis_kind)
    load_global(model, method(cfg.method), m.from_record(msg.content[m.ARRAYS]))
    return model, data


def _keep(context: Context, key: str, id_key: str, data: ImageSet, logits, conf) -> None:
    record = {"logits": logits, "labels": data.labels, "snr_db": data.snr_db}
    context.state[key] = m.to_record(record)
    context.state[id_key] = ConfigRecord({"id": int(conf[m.CALIBRATION_ID])})


def calibrate(msg: Message, context: Context, pid: int) -> None:
    """Store this node's validation logits (and labels) under the sent global state.

    They go in ``context.state``, for the temperature-scaling steps that follow; with
    ``keep-test`` (data at the site) its test logits too, for the final scores.
    """
    conf = msg.content[m.CONFIG]
    model, data = _load_sent(msg, context, pid)
    _keep(context, m.CALIBRATION, m.CALIBRATION_ID, data.val, predict(model, data.val), conf)
    if conf.get(m.KEEP_TEST):
        _keep(context, m.SITE_TEST, m.SITE_TEST_ID, data.test, predict(model, data.test), conf)


def keep_test(msg: Message, context: Context, pid: int) -> None:
    """Store this node's test logits under the sent global state (for ``score`` messages)."""
    conf = msg.content[m.CONFIG]
    model, data = _load_sent(msg, context, pid)
    _keep(context, m.SITE_TEST, m.SITE_TEST_ID, data.test, predict(model, data.test), conf)


def describe(msg: Message, context: Context, pid: int) -> ConfigRecord:
    """This site's partition.json row; reading its data-path here fails before any training."""
    torch.set_num_threads(1)
    if not site_paths(context):
        raise ConfigError(f"{m.DATA_PATH}: none in this SuperNode's node config")
    _, _, data = _node_parts(msg, context, pid)
    return ConfigRecord(site_row(pid, data))


def evaluate(msg: Message, context: Context, pid: int) -> MetricRecord:
    """Sums of the asked splits ("val", "test") under the sent global state (``site_eval``)."""
    conf = msg.content[m.CONFIG]
    model, data = _load_sent(msg, context, pid)
    sums: dict = {}
    for split in str(conf["splits"]).split(","):
        images: ImageSet = getattr(data, split)
        logits = predict(model, images).double().numpy()
        sums.update(split_sums(logits, images.labels.numpy(), images.snr_db.numpy(), f"{split}."))
    return m.metric_record(sums)


def train_round(msg: Message, context: Context, pid: int, cfg: RunConfig, model, data):
    """A training round of ``pid``: (upload, metrics), with ``client_step`` as everywhere.

    What the client keeps between rounds (its int8 error-feedback residuals, ``payload``) lives
    in ``context.state`` (``RESIDUALS``), as the embedded engine keeps it in the checkpoint; it
    is replaced only after a round that trained to the end.
    """
    _load_basis(model, msg, context, cfg.client.basis_kind)
    global_state = m.from_record(msg.content[m.ARRAYS])
    server_round = int(msg.content[m.CONFIG]["server-round"])
    kept = m.from_record(context.state[RESIDUALS]) if RESIDUALS in context.state else None
    state, metrics, kept = client_step(model, data, cfg, server_round, pid, global_state, kept)
    if kept:
        context.state[RESIDUALS] = m.to_record(kept)
    return state, metrics


def train(msg: Message, context: Context, pid: int) -> Message:
    """Round 0 (summed gradients) or a training round (trained tensors + metrics) of ``pid``."""
    torch.set_num_threads(1)
    conf = msg.content[m.CONFIG]
    cfg, model, client = _node_parts(msg, context, pid)
    data = client.train
    stage = str(conf["stage"])
    if stage == m.STAGE_INIT:
        sent = m.from_record(msg.content[m.ARRAYS]) if m.ARRAYS in msg.content else {}
        stage = str(conf["init"])
        state = client_round0(model, data, cfg, pid, int(conf["samples"]), stage, sent)
        metrics = {"num-examples": len(data)}
    elif stage == m.STAGE_TRAIN:
        state, metrics = train_round(msg, context, pid, cfg, model, data)
    else:
        raise ConfigError(f"unknown stage {stage!r}")
    content = RecordDict({m.ARRAYS: m.to_record(state), m.METRICS: m.metric_record(metrics)})
    return Message(content=content, reply_to=msg)
