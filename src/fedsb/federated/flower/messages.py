"""What the Flower messages carry: record names, config keys, tensor conversion.

A server message holds ``arrays`` (the global state: the trained tensors, for fedex and flora
also the folded W0 of every adapted layer; nothing in round 0), ``config``
(stage, server round, client id, the run's TOML, the cache dir) and, the first time a node is
addressed, ``basis`` (LoRA-SB's frozen B and A). A reply holds ``arrays`` and ``metrics``.

Calibration (federated temperature scaling after the last round) is one EVALUATE message per
Newton step: the first carries the final global state, the node keeps its validation logits in
``context.state`` and every step's reply is four sums (``CALIBRATION_SUMS``) at the server's β.
With the data at the sites (``data-at-sites``), a node also answers a ``describe`` query (its
partition.json row), an ``evaluate`` message per round (sums of its validation and test splits
under the sent global state, ``site_eval``) and one ``score`` message at the end (its test
split's sums at the fitted temperature, ``site_scores``; from the test logits kept at the first
calibration step when it has them). Importing this module does not import torch or the task
code (``client_app`` answers the server's first query with Flower alone).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from flwr.app import ArrayRecord, MetricRecord

from ...config import dumps_toml, from_dict, to_dict
from ...errors import ConfigError

if TYPE_CHECKING:
    import torch

    from ..config import RunConfig

ARRAYS, CONFIG, METRICS, BASIS = "arrays", "config", "metrics", "basis"
STAGE_INIT, STAGE_TRAIN = "init", "train"  # LoRA-SB round 0 | a training round
STAGE_CALIBRATE = "calibrate"  # one temperature-scaling step (an EVALUATE message)
CALIBRATION = "calibration"  # context.state: the node's validation logits and labels
CALIBRATION_ID = "calibration-id"  # which global state those logits are for
CALIBRATION_SUMS = ("count", "nll", "grad", "hess")  # calibrate.client_calibration_stats
PARTITION_ID = "partition-id"  # node_config key: which client of the partition a node is
NUM_PARTITIONS = "num-partitions"  # node_config key: how many clients (sites) there are
DATA_PATH = "data-path"  # node_config key: the node's own data files ("," between several)
AT_SITE = "data-at-site"  # query reply: whether the node has a data-path
CACHE_DIR = "cache-dir"  # node_config (wins) or message config key
STAGE_DESCRIBE = "describe"  # query: the node's partition.json row (it reads its data)
STAGE_EVALUATE = "evaluate"  # sums of the node's splits under the sent global state
STAGE_SCORE = "score"  # the final scores of the node's test split at a temperature
KEEP_TEST = "keep-test"  # message config: calibration also keeps the test logits
SITE_TEST, SITE_TEST_ID = "site-test", "site-test-id"  # context.state: test logits, their id
ROW = "row"  # describe reply record

State = dict[str, "torch.Tensor"]


def to_record(state: Mapping[str, torch.Tensor]) -> ArrayRecord:
    """The state as a Flower ArrayRecord (detached, contiguous tensors)."""
    return ArrayRecord({k: v.detach().contiguous() for k, v in state.items()})


def from_record(record: ArrayRecord) -> State:
    """The state of a received ArrayRecord, as torch tensors."""
    return dict(record.to_torch_state_dict())


def _plain(value):
    if isinstance(value, list | tuple):
        return [float(v) for v in value]
    return int(value) if isinstance(value, int) else float(value)


def metric_record(metrics: Mapping[str, object]) -> MetricRecord:
    """MetricRecord takes plain int/float (or lists of float) only: no numpy scalars, no None."""
    return MetricRecord({k: _plain(v) for k, v in metrics.items() if v is not None})


def config_text(cfg: RunConfig) -> str:
    """The run config as TOML, with a relative ``pretrained`` path made absolute.

    Clients may run in another working directory.
    """
    data = to_dict(cfg)
    path = Path(cfg.pretrained)
    if not path.is_absolute() and path.exists():
        data["pretrained"] = str(path.resolve())
    return dumps_toml(data)


def parse_config(text: str) -> RunConfig:
    """RunConfig from the TOML text of a message (ConfigError naming the key if invalid)."""
    from ..config import RunConfig

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"run config in the message: invalid TOML ({exc})") from None
    return from_dict(RunConfig, data)
