"""The Flower ClientApp: rebuild this node's share of the task, then call the shared client code.

A node holds only its own data (``plan_partition(...)[partition-id]``, generated or loaded from
its cache dir), the adapted backbone (``resolve_pretrained`` + ``adapted_model``) and, for
LoRA-SB, the basis the server sent once (kept in ``context.state``). Training and round 0 are
``engine_local.client_step`` and ``client_init_step``, exactly as in the embedded engine.

Built parts are cached per process: Ray actors of the simulation serve many messages, while a
deployment SuperNode starts a fresh ClientApp process per message and rebuilds (cheap: the data
come from the on-disk cache).
"""

from __future__ import annotations

from collections import OrderedDict
from logging import WARNING
from pathlib import Path

import torch
from flwr.app import ConfigRecord, Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.constant import ErrorCode
from flwr.common.logger import log
from torch import nn

from ...errors import ConfigError
from ...models.lora_sb_init import load_lora_sb_basis
from ...training.finetune import resolve_pretrained
from ...training.imageset import ImageSet
from ...training.reporter import SilentReporter
from ..config import RunConfig
from ..engine_local import client_init_step, client_step
from ..partition import build_client_data, concat, plan_partition
from ..task import adapted_model, has_lora_sb
from .messages import (
    ARRAYS,
    BASIS,
    CACHE_DIR,
    CONFIG,
    METRICS,
    PARTITION_ID,
    STAGE_INIT,
    STAGE_TRAIN,
    from_record,
    metric_record,
    parse_config,
    to_record,
)

app = ClientApp()

_DATA_SLOTS = 4  # client datasets kept per process (a Ray actor may serve every client)
_CACHE: dict = {"text": None, "model": None, "data": OrderedDict()}


def partition_id(context: Context) -> int:
    value = context.node_config.get(PARTITION_ID)
    if value is None:
        raise ConfigError(f"this SuperNode has no {PARTITION_ID} (pass --node-config)")
    return int(value)


def _cache_dir(context: Context, conf: ConfigRecord) -> Path | None:
    value = context.node_config.get(CACHE_DIR) or conf.get(CACHE_DIR) or ""
    return Path(str(value)) if value else None


def _client_data(cfg: RunConfig, pid: int, cache_dir: Path | None) -> ImageSet:
    """This node's training data; for ``centralized`` the union of every client's."""
    plans = plan_partition(cfg.partition, cfg.data)
    ids = range(len(plans)) if cfg.method == "centralized" else [pid]
    sets = [build_client_data(plans[i], cfg.partition, cfg.data, cache_dir).train for i in ids]
    return sets[0] if len(sets) == 1 else concat(sets)


def parts(text: str, pid: int, cache_dir: Path | None) -> tuple[RunConfig, nn.Module, ImageSet]:
    """(config, adapted model, training data) of this node, cached while the config is the same."""
    if _CACHE["text"] != text:
        _CACHE.update(text=text, cfg=parse_config(text), model=None, data=OrderedDict())
    cfg: RunConfig = _CACHE["cfg"]
    if _CACHE["model"] is None:
        checkpoint = resolve_pretrained(cfg.pretrained, cache_dir, SilentReporter())
        _CACHE["model"], _CACHE["meta"] = adapted_model(cfg, checkpoint)
    slots: OrderedDict = _CACHE["data"]
    key = (pid, cache_dir)
    if key not in slots:
        data = _client_data(cfg, pid, cache_dir)
        if data.class_names != tuple(_CACHE["meta"]["class_names"]):
            raise ConfigError("data.classes differ from the classes the backbone was trained on")
        slots[key] = data
        while len(slots) > _DATA_SLOTS:
            slots.popitem(last=False)
    slots.move_to_end(key)
    return cfg, _CACHE["model"], slots[key]


def _load_basis(model: nn.Module, msg: Message, context: Context) -> None:
    """Keep the basis the server sent (first message to this node) and load it into the model."""
    if BASIS in msg.content:
        context.state[BASIS] = msg.content[BASIS]
    if not has_lora_sb(model):
        return
    if BASIS not in context.state:
        raise ConfigError("no LoRA-SB basis on this node yet (the server resends it)")
    load_lora_sb_basis(model, from_record(context.state[BASIS]))


@app.query()
def query(msg: Message, context: Context) -> Message:
    """Which client of the partition this node is (the server maps node ids with it)."""
    try:
        reply = ConfigRecord({PARTITION_ID: partition_id(context)})
    except Exception as exc:  # noqa: BLE001
        return _failed(msg, exc)
    return Message(content=RecordDict({CONFIG: reply}), reply_to=msg)


def _failed(msg: Message, exc: Exception) -> Message:
    """An error reply whose reason is one line (not a Ray or subprocess traceback)."""
    reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
    log(WARNING, "fedsb client: %s", reason)
    return Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=reason), reply_to=msg)


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Round 0 (summed gradients) or a training round (trained tensors + metrics)."""
    try:
        return _train(msg, context)
    except Exception as exc:  # noqa: BLE001 - any failure is this client's answer, not a crash
        return _failed(msg, exc)


def _train(msg: Message, context: Context) -> Message:
    torch.set_num_threads(1)
    conf = msg.content[CONFIG]
    pid = partition_id(context)
    if int(conf["client"]) != pid:
        raise ConfigError(f"message for client {conf['client']} reached partition-id {pid}")
    cfg, model, data = parts(str(conf["run-config"]), pid, _cache_dir(context, conf))
    stage = str(conf["stage"])
    if stage == STAGE_INIT:
        state = client_init_step(model, data, cfg, pid, int(conf["samples"]))
        metrics = {"num-examples": len(data)}
    elif stage == STAGE_TRAIN:
        _load_basis(model, msg, context)
        global_state = from_record(msg.content[ARRAYS])
        state, metrics = client_step(model, data, cfg, int(conf["server-round"]), pid, global_state)
    else:
        raise ConfigError(f"unknown stage {stage!r}")
    content = RecordDict({ARRAYS: to_record(state), METRICS: metric_record(metrics)})
    return Message(content=content, reply_to=msg)
