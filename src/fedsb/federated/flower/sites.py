"""The Flower side of a run whose data stay at the sites: the nodes, their rows, evaluation.

``serve_sites`` is the ServerApp's job with ``data-at-sites = true``: wait for the SuperNodes
(the number of sites is their ``num-partitions``), build the server's task without client data
(``task.build_site_task``), ask every node to describe its data (each reads its own
``data-path`` here, so a bad path fails the run at once, naming the site and the path), then
run ``server.federate`` over a ``SiteEngine``. That engine is a ``GridEngine`` that also
evaluates on the nodes: each round's ``evaluate`` messages (the new global state down, the
sums of the node's validation and test splits up) and the final ``score`` messages (from the
test logits a node kept at the first calibration step, else with the final state). The bytes
of these messages are counted (``SiteAnswers.bytes``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from ...reporter import Reporter
from ...runs import RunDir
from ..aggregate import payload_bytes
from ..config import RunConfig
from ..server import FederatedError, RunResult, federate
from ..site_eval import SiteAnswers
from ..sites import save_sites, with_sites
from ..task import Task, build_site_task
from .engine import GridEngine, NodeInfo, one_line
from .messages import (
    ARRAYS,
    CALIBRATION_ID,
    CONFIG,
    DATA_PATH,
    KEEP_TEST,
    METRICS,
    NUM_PARTITIONS,
    PARTITION_ID,
    ROW,
    STAGE_DESCRIBE,
    STAGE_EVALUATE,
    STAGE_SCORE,
    State,
    config_text,
    to_record,
)


def site_count(found: dict[int, NodeInfo], default: int) -> int:
    """The number of sites: the nodes' num-partitions (they must agree), else ``default``."""
    claimed = sorted({i.partitions for i in found.values() if i.partitions is not None})
    if len(claimed) > 1:
        raise FederatedError(f"the SuperNodes disagree on {NUM_PARTITIONS}: {claimed}")
    return claimed[0] if claimed else default


class SiteEngine(GridEngine):
    """A ``GridEngine`` whose nodes hold their own data: it also evaluates on them."""

    def __init__(self, grid: Grid, cfg: RunConfig, cache_dir: Path | None, timeout: float):
        super().__init__(grid, None, cfg, cache_dir, timeout)  # the task comes with the sites
        self.base[KEEP_TEST] = True

    def discover_sites(self, default: int) -> int:
        """Wait (bounded) until every site has a node; returns the number of sites."""

        def complete(got: dict[int, NodeInfo]) -> bool:
            return bool(got) and all(i in got for i in range(site_count(got, default)))

        found = self.poll_nodes(complete)
        n = site_count(found, default)
        missing = sorted(set(range(n)) - set(found))
        if missing:
            raise FederatedError(self.missing_text(missing, n - len(missing), n))
        for pid, info in sorted(found.items()):
            if pid >= n:
                raise FederatedError(
                    f"SuperNode {info.node} has partition-id {pid}, outside "
                    f"{NUM_PARTITIONS}={n} (partition-ids are 0..{n - 1})"
                )
            if not info.at_site:
                raise FederatedError(
                    f"site {pid} (SuperNode {info.node}): no {DATA_PATH} in its node config; "
                    f'start it with --node-config "{PARTITION_ID}={pid} {NUM_PARTITIONS}={n} '
                    f"{DATA_PATH}='/abs/dir'\""
                )
        self.nodes = {pid: found[pid].node for pid in range(n)}
        return n

    def use(self, task: Task, cfg: RunConfig) -> None:
        """The task and config of the run (known once the sites are)."""
        self.task, self.cfg = task, cfg
        self.base["run-config"] = config_text(cfg)

    def describe(self) -> list[dict]:
        """Every site's partition.json row; a site that cannot read its data fails the run."""
        nodes = self.node_of()
        messages = [
            Message(
                RecordDict(
                    {CONFIG: ConfigRecord({**self.base, "stage": STAGE_DESCRIBE, "client": c})}
                ),
                dst_node_id=node,
                message_type=MessageType.QUERY,
            )
            for c, node in nodes.items()
        ]
        replies = {
            r.metadata.src_node_id: r
            for r in self.grid.send_and_receive(messages, timeout=self.connect_timeout)
        }
        rows = []
        for client, node in nodes.items():
            reply = replies.get(node)
            if reply is None or reply.has_error():
                reason = "no answer" if reply is None else one_line(reply.error.reason)
                raise FederatedError(f"site {client} (SuperNode {node}): {reason}")
            rows.append(dict(reply.content[ROW]))
        return rows

    def _answers(self, messages: list[Message], ids: list[int], down: float) -> SiteAnswers:
        """The sums of every node that answered; bytes: ``down`` per message with arrays."""
        sent = sum(down for msg in messages if ARRAYS in msg.content)
        sums, dropped, up = {}, {}, 0.0
        for client, reply, _ in self._exchange(messages, ids):
            if reply is None or reply.has_error():
                if reply is not None:
                    self.with_basis.discard(reply.metadata.src_node_id)
                reason = one_line(reply.error.reason) if reply is not None else "timed out"
                dropped[str(client)] = reason
                continue
            record = reply.content[METRICS]
            up += record.count_bytes()
            sums[client] = dict(record)
        return SiteAnswers(sums, float(sent + up), dropped)

    def evaluate(self, ids: list[int], global_state: State, splits: tuple[str, ...]) -> SiteAnswers:
        """Each listed node's sums of its ``splits`` ("val", "test") under ``global_state``."""
        extra = {"splits": ",".join(splits)}
        arrays = to_record(global_state)
        kind = MessageType.EVALUATE
        messages = self._messages(STAGE_EVALUATE, ids, extra, arrays, kind)
        return self._answers(messages, ids, payload_bytes(global_state))

    def final_scores(self, ids: list[int], global_state: State, temperature: float) -> SiteAnswers:
        """Each listed node's test-split sums at ``temperature`` (``site_scores.score_sums``).

        Nodes that kept their test logits of ``global_state`` at calibration get no state.
        """
        held = self.with_logits if self.calibrating is global_state else set()
        extra = {"temperature": float(temperature), CALIBRATION_ID: self.calibration_id}
        fresh = [c for c in ids if c not in held]
        known = [c for c in ids if c in held]
        kind = MessageType.EVALUATE
        arrays = to_record(global_state)
        messages = self._messages(STAGE_SCORE, fresh, extra, arrays, kind)
        messages += self._messages(STAGE_SCORE, known, extra, None, kind)
        return self._answers(messages, fresh + known, payload_bytes(global_state))


def serve_sites(
    grid: Grid,
    cfg: RunConfig,
    run: RunDir,
    cache_dir: Path | None,
    reporter: Reporter,
    test_paths: tuple[str, ...] = (),
    resume: bool = False,
    on_round: Callable[[dict], None] | None = None,
    connect_timeout: float = 120.0,
) -> RunResult:
    """``federate`` with the data at the nodes of ``grid``; the server never opens them.

    ``test_paths``: the server's own global test set (else the evaluation is federated).
    """
    engine = SiteEngine(grid, cfg, cache_dir, connect_timeout)
    n = engine.discover_sites(cfg.partition.clients)
    if resume and n != cfg.partition.clients:
        raise FederatedError(
            f"{run.path}: the run has {cfg.partition.clients} sites, but the SuperNodes say "
            f"{NUM_PARTITIONS}={n}"
        )
    cfg = with_sites(cfg, n)
    task = build_site_task(cfg, cache_dir, reporter, n, test_paths)
    engine.use(task, cfg)
    task.partition = engine.describe()
    if not resume:
        save_sites(run.path, test_paths)
    try:
        return federate(task, cfg, run, engine, cache_dir, reporter, resume, on_round)
    finally:
        engine.close()
