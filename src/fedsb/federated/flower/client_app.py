"""The Flower ClientApp: which partition this node is, and its training messages.

Only Flower is imported here: a deployment SuperNode starts a fresh ClientApp process per
message, and the server's first message (a query for ``partition-id``) is answered without
importing torch. Training messages go to ``node.train`` (imported on first use). Calibration
steps after the first reuse the validation logits kept in ``context.state`` (numpy only), and so
do the final scores of a node with its data at the site (its kept test logits). Any failure
becomes an error reply with a one-line reason, which the server records as a dropped client.
"""

from __future__ import annotations

from collections.abc import Sequence
from logging import WARNING

from flwr.app import ConfigRecord, Context, Error, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.constant import ErrorCode
from flwr.common.logger import log

from ...errors import ConfigError, FedsbError
from ...training.calibration import temperature_stats
from ..site_scores import score_sums
from .messages import (
    ARRAYS,
    AT_SITE,
    CALIBRATION,
    CALIBRATION_ID,
    CALIBRATION_SUMS,
    CONFIG,
    DATA_PATH,
    METRICS,
    NUM_PARTITIONS,
    PARTITION_ID,
    ROW,
    SITE_TEST,
    SITE_TEST_ID,
    STAGE_DESCRIBE,
    STAGE_EVALUATE,
    STAGE_SCORE,
    metric_record,
)

app = ClientApp()


def partition_id(context: Context) -> int:
    """This SuperNode's client id, from its node config; ConfigError when it has none."""
    value = context.node_config.get(PARTITION_ID)
    if value is None:
        raise ConfigError(f"this SuperNode has no {PARTITION_ID} (pass --node-config)")
    return int(value)


def _failed(msg: Message, exc: Exception, typed: bool = True) -> Message:
    """An error reply whose reason is one line (not a Ray or subprocess traceback)."""
    reason = (f"{type(exc).__name__}: {exc}" if typed else str(exc)).splitlines()[0]
    log(WARNING, "fedsb client: %s", reason)
    return Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=reason), reply_to=msg)


def node_info(context: Context) -> ConfigRecord:
    """The answer to the partition-id query: partition-id, num-partitions, own data or not."""
    info = {PARTITION_ID: partition_id(context), AT_SITE: DATA_PATH in context.node_config}
    if context.node_config.get(NUM_PARTITIONS) is not None:
        info[NUM_PARTITIONS] = int(context.node_config[NUM_PARTITIONS])
    return ConfigRecord(info)


@app.query()
def query(msg: Message, context: Context) -> Message:
    """Which client of the partition this node is, or (describe) its partition.json row."""
    describe = CONFIG in msg.content and msg.content[CONFIG].get("stage") == STAGE_DESCRIBE
    try:
        if describe:
            from . import node  # torch and the task code: the node reads its data

            content = RecordDict({ROW: node.describe(msg, context, partition_id(context))})
        else:
            content = RecordDict({CONFIG: node_info(context)})
    except Exception as exc:  # noqa: BLE001
        return _failed(msg, exc, typed=not (describe and isinstance(exc, FedsbError)))
    return Message(content=content, reply_to=msg)


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


def kept_test_scores(context: Context, conf: ConfigRecord) -> MetricRecord:
    """``site_scores.score_sums`` of the kept test logits at the sent temperature."""
    held = context.state.get(SITE_TEST_ID)
    if (
        SITE_TEST not in context.state
        or held is None
        or int(held["id"]) != int(conf[CALIBRATION_ID])
    ):
        raise ConfigError("no test logits for this global state on this node")
    record = context.state[SITE_TEST]
    sums = score_sums(
        record["logits"].numpy(),
        record["labels"].numpy(),
        record["snr_db"].numpy(),
        float(conf["temperature"]),
    )
    return metric_record(sums)


def _evaluate(msg: Message, context: Context) -> MetricRecord:
    pid = partition_id(context)
    conf = msg.content[CONFIG]
    stage = conf.get("stage")
    if stage == STAGE_EVALUATE:
        from . import node

        return node.evaluate(msg, context, pid)
    if ARRAYS in msg.content:  # the first calibration step, or a score without kept logits
        from . import node

        if stage == STAGE_SCORE:
            node.keep_test(msg, context, pid)
        else:
            node.calibrate(msg, context, pid)
    return (
        kept_test_scores(context, conf) if stage == STAGE_SCORE else calibration_sums(context, conf)
    )


@app.evaluate()
def evaluate_handler(msg: Message, context: Context) -> Message:
    """A temperature-scaling step, or (data at the site) an evaluation or the final scores.

    The first calibration step carries the global state and computes the logits.
    """
    try:
        sums = _evaluate(msg, context)
    except Exception as exc:  # noqa: BLE001 - this client's answer, as for training
        return _failed(msg, exc)
    return Message(content=RecordDict({METRICS: sums}), reply_to=msg)


def site_app(data_paths: Sequence[str]) -> ClientApp:
    """This ClientApp for a simulated deployment at the sites: node i's data-path is entry i.

    The Simulation Engine gives each node only ``partition-id`` and ``num-partitions``; a mod
    adds the ``data-path`` a real SuperNode gets from ``--node-config``.
    """
    paths = tuple(data_paths)

    def with_data_path(msg: Message, context: Context, call_next) -> Message:
        context.node_config[DATA_PATH] = paths[partition_id(context)]
        return call_next(msg, context)

    sites = ClientApp(mods=[with_data_path])
    sites.query()(query)
    sites.train()(train)
    sites.evaluate()(evaluate_handler)
    return sites
