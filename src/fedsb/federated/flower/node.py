"""A node's work: rebuild its share of the task, then call the shared client code.

A node holds only its own data (``plan_partition(...)[partition-id]``, generated or loaded from
its cache dir), the adapted backbone (``resolve_pretrained`` + ``adapted_model``) and, for
LoRA-SB, the basis the server sent once (kept in ``context.state``). Training and round 0 are
``client.client_step`` and ``client_init_step``, exactly as in the embedded engine;
``calibrate`` computes the validation logits that temperature scaling's steps reuse.

Built parts are cached per process (``_built`` and ``_data``: pure builders behind
``functools.lru_cache``, keyed by the run config's text, the partition id and the cache dir):
Ray actors of the simulation serve many messages, while a deployment SuperNode starts a fresh
ClientApp process per message and rebuilds (cheap: the data come from the on-disk cache).
``client_app`` imports this module (and torch) only when a training message arrives, so a node
answers the server's partition-id query quickly.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
from flwr.app import ConfigRecord, Context, Message, RecordDict
from torch import nn

from ...data.imageset import ImageSet
from ...data.partition import build_client_data, plan_partition
from ...errors import ConfigError
from ...models.lora_sb_init import load_lora_sb_basis
from ...reporter import SilentReporter
from ...training.loop import predict
from ...training.pretrain import resolve_pretrained
from ..client import client_init_step, client_step
from ..config import RunConfig
from ..methods import method
from ..states import load_global
from ..task import adapted_model, has_lora_sb
from . import messages as m

_DATA_SLOTS = 4  # client datasets kept per process (a Ray actor may serve every client)


def _cache_dir(context: Context, conf: ConfigRecord) -> Path | None:
    value = context.node_config.get(m.CACHE_DIR) or conf.get(m.CACHE_DIR) or ""
    return Path(str(value)) if value else None


def _client_data(cfg: RunConfig, pid: int, cache_dir: Path | None) -> tuple[ImageSet, ImageSet]:
    """This node's (training, validation) data: partition ``pid`` of the run's partition."""
    plans = plan_partition(cfg.partition, cfg.data)
    data = build_client_data(plans[pid], cfg.partition, cfg.data, cache_dir)
    return data.train, data.val


@lru_cache(maxsize=1)
def _built(text: str, cache_dir: Path | None) -> tuple[RunConfig, nn.Module, tuple[str, ...]]:
    """(config, adapted model, the backbone's class names) of a run config: one run at a time."""
    cfg = m.parse_config(text)
    checkpoint = resolve_pretrained(cfg.pretrained, cache_dir, SilentReporter())
    model, meta = adapted_model(cfg, checkpoint)
    return cfg, model, tuple(meta["class_names"])


@lru_cache(maxsize=_DATA_SLOTS)
def _data(text: str, pid: int, cache_dir: Path | None) -> tuple[ImageSet, ImageSet]:
    return _client_data(m.parse_config(text), pid, cache_dir)


def parts(
    text: str, pid: int, cache_dir: Path | None
) -> tuple[RunConfig, nn.Module, tuple[ImageSet, ImageSet]]:
    """(config, adapted model, (training, validation) data) of this node.

    Built once per config (the model) and per client (the data, the last few kept).
    """
    cfg, model, class_names = _built(text, cache_dir)
    data = _data(text, pid, cache_dir)
    if data[0].class_names != class_names:
        raise ConfigError("data.classes differ from the classes the backbone was trained on")
    return cfg, model, data


def _load_basis(model: nn.Module, msg: Message, context: Context) -> None:
    """Keep the basis the server sent (first message to this node) and load it into the model."""
    if m.BASIS in msg.content:
        context.state[m.BASIS] = msg.content[m.BASIS]
    if not has_lora_sb(model):
        return
    if m.BASIS not in context.state:
        raise ConfigError("no LoRA-SB basis on this node yet (the server resends it)")
    load_lora_sb_basis(model, m.from_record(context.state[m.BASIS]))


def _check_client(conf: ConfigRecord, pid: int) -> None:
    if int(conf["client"]) != pid:
        raise ConfigError(f"message for client {conf['client']} reached partition-id {pid}")


def calibrate(msg: Message, context: Context, pid: int) -> None:
    """Store this node's validation logits (and labels) under the sent global state.

    They go in ``context.state``, for the temperature-scaling steps that follow.
    """
    torch.set_num_threads(1)
    conf = msg.content[m.CONFIG]
    _check_client(conf, pid)
    cfg, model, (_, val) = parts(str(conf["run-config"]), pid, _cache_dir(context, conf))
    _load_basis(model, msg, context)
    load_global(model, method(cfg.method), m.from_record(msg.content[m.ARRAYS]))
    logits = predict(model, val)
    context.state[m.CALIBRATION] = m.to_record({"logits": logits, "labels": val.labels})
    context.state[m.CALIBRATION_ID] = ConfigRecord({"id": int(conf[m.CALIBRATION_ID])})


def train(msg: Message, context: Context, pid: int) -> Message:
    """Round 0 (summed gradients) or a training round (trained tensors + metrics) of ``pid``."""
    torch.set_num_threads(1)
    conf = msg.content[m.CONFIG]
    _check_client(conf, pid)
    cfg, model, (data, _) = parts(str(conf["run-config"]), pid, _cache_dir(context, conf))
    stage = str(conf["stage"])
    if stage == m.STAGE_INIT:
        state = client_init_step(model, data, cfg, pid, int(conf["samples"]))
        metrics = {"num-examples": len(data)}
    elif stage == m.STAGE_TRAIN:
        _load_basis(model, msg, context)
        global_state = m.from_record(msg.content[m.ARRAYS])
        server_round = int(conf["server-round"])
        state, metrics, _ = client_step(model, data, cfg, server_round, pid, global_state)
    else:
        raise ConfigError(f"unknown stage {stage!r}")
    content = RecordDict({m.ARRAYS: m.to_record(state), m.METRICS: m.metric_record(metrics)})
    return Message(content=content, reply_to=msg)
