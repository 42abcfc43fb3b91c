"""The Flower ClientApp: which partition this node is, and its training messages.

Only Flower is imported here: a deployment SuperNode starts a fresh ClientApp process per
message, and the server's first message (a query for ``partition-id``) is answered without
importing torch. Training messages go to ``node.train`` (imported on first use). Calibration
steps after the first reuse the validation logits kept in ``context.state`` (numpy only). Any
failure becomes an error reply with a one-line reason, which the server records as a dropped
client.
"""

from __future__ import annotations

from logging import WARNING

from flwr.app import ConfigRecord, Context, Error, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.constant import ErrorCode
from flwr.common.logger import log

from ...errors import ConfigError
from ...evaluation.calibration import temperature_stats
from .messages import (
    ARRAYS,
    CALIBRATION,
    CALIBRATION_ID,
    CALIBRATION_SUMS,
    CONFIG,
    METRICS,
    PARTITION_ID,
)

app = ClientApp()


def partition_id(context: Context) -> int:
    """This SuperNode's client id, from its node config; ConfigError when it has none."""
    value = context.node_config.get(PARTITION_ID)
    if value is None:
        raise ConfigError(f"this SuperNode has no {PARTITION_ID} (pass --node-config)")
    return int(value)


def _failed(msg: Message, exc: Exception) -> Message:
    """An error reply whose reason is one line (not a Ray or subprocess traceback)."""
    reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
    log(WARNING, "fedsb client: %s", reason)
    return Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=reason), reply_to=msg)


@app.query()
def query(msg: Message, context: Context) -> Message:
    """Which client of the partition this node is (the server maps node ids with it)."""
    try:
        reply = ConfigRecord({PARTITION_ID: partition_id(context)})
    except Exception as exc:  # noqa: BLE001
        return _failed(msg, exc)
    return Message(content=RecordDict({CONFIG: reply}), reply_to=msg)


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Round 0 (summed gradients) or a training round (trained tensors + metrics)."""
    try:
        from . import node  # torch and the task code: only for training messages

        return node.train(msg, context, partition_id(context))
    except Exception as exc:  # noqa: BLE001 - any failure is this client's answer, not a crash
        return _failed(msg, exc)


def calibration_sums(context: Context, conf: ConfigRecord) -> MetricRecord:
    """``calibrate.client_calibration_stats`` on the stored validation logits at the sent β."""
    wanted = int(conf[CALIBRATION_ID])
    held = context.state.get(CALIBRATION_ID)
    if CALIBRATION not in context.state or held is None or int(held["id"]) != wanted:
        raise ConfigError("no validation logits for this global state on this node")
    record = context.state[CALIBRATION]
    stats = temperature_stats(
        record["logits"].numpy(), record["labels"].numpy(), float(conf["beta"])
    ).as_dict()
    return MetricRecord({k: float(stats[k]) for k in CALIBRATION_SUMS})


@app.evaluate()
def evaluate_handler(msg: Message, context: Context) -> Message:
    """One temperature-scaling step; the first (it carries the global state) computes logits."""
    try:
        pid = partition_id(context)
        if ARRAYS in msg.content:
            from . import node

            node.calibrate(msg, context, pid)
        sums = calibration_sums(context, msg.content[CONFIG])
    except Exception as exc:  # noqa: BLE001 - this client's answer, as for training
        return _failed(msg, exc)
    return Message(content=RecordDict({METRICS: sums}), reply_to=msg)
