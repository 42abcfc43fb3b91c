"""One server round: sample, train, screen, aggregate, step, evaluate, count, the metrics row.

``run_round`` takes the progress after the previous round and returns the next one (new
records: nothing is changed in place) with the round's row. Each answer is screened
(``check_update``: keys, shapes, dtypes, finiteness, norm bound; crashes and timeouts come from
the engine) against what the method's clients send (``states.upload_reference``) before the
rest is aggregated by the method's function (``aggregate.AGGREGATORS``). With the data at the
sites (``task.sites``) the round's scores come from the sampled nodes' sums (``site_scores``).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from ..data.imageset import ImageSet
from ..errors import FedsbError
from ..models.lora_sb_init import lora_sb_basis
from ..training.loop import Evaluation, evaluate_logits, predict
from . import dp as dpacc
from .aggregate import (
    aggregate_round,
    check_update,
    parameter_count,
    payload_bytes,
    server_step,
    update_agreement,
)
from .config import ClientConfig, RunConfig
from .faults import ClientResult
from .methods import FedMethod, method
from .payload import broadcast, encode_fixed, rebase, received_update
from .personal import (
    Personal,
    evaluate_personal,
    global_model,
    model_kept,
    unit_weights,
    updated,
)
from .progress import Progress, State, Totals
from .site_eval import SiteAnswers, pool_evaluation
from .states import fresh_seed, layer_scalings, load_global, upload_reference
from .task import Task

if TYPE_CHECKING:  # engines.run_federated imports the server loop: typing only, no cycle
    from .engines import Engine, SiteEvaluator


class FederatedError(FedsbError):
    """A round cannot go on (too few valid updates) or a run directory cannot be used."""


def sample_clients(cfg: RunConfig, server_round: int, n_units: int) -> list[int]:
    """Clients of ``server_round``: a seeded draw of ceil(fraction * n), at least min_clients."""
    if n_units == 1:
        return [0]
    k = max(cfg.server.min_clients, int(np.ceil(cfg.server.fraction * n_units)))
    rng = np.random.default_rng([cfg.seed, server_round, 17])
    return sorted(int(i) for i in rng.choice(n_units, size=min(k, n_units), replace=False))


def init_participants(cfg: RunConfig, n_clients: int) -> list[int]:
    """Round 0's clients: ``init_clients`` of them (a seeded draw), else a round's draw."""
    if not cfg.init_clients:
        return sample_clients(cfg, 0, n_clients)
    rng = np.random.default_rng([cfg.seed, 0, 23])
    k = min(cfg.init_clients, n_clients)
    return sorted(int(i) for i in rng.choice(n_clients, size=k, replace=False))


def basis_newcomers(cfg: RunConfig, server_round: int, ids: list[int], n_clients: int) -> int:
    """How many of round ``server_round``'s clients have not received LoRA-SB's B and A yet.

    A client receives them in round 0 if it took part (never with proxy data), else the first
    round it is drawn in. The draws are seeded, so this needs no stored state to resume.
    """
    seen = set() if cfg.init_source == "proxy" else set(init_participants(cfg, n_clients))
    for past in range(1, server_round):
        seen.update(sample_clients(cfg, past, n_clients))
    return len(set(ids) - seen)


def evaluate_state(task: Task, state: State, data: ImageSet, fed: FedMethod) -> Evaluation:
    """The evaluation on ``data`` of the model with ``state`` (of method ``fed``) loaded."""
    load_global(task.model, fed, state)
    return evaluate_logits(predict(task.model, data), data)


def round_sample(data: ImageSet, records: int, seed: int) -> ImageSet:
    """The round rows' sample of ``data``: ``records`` of them drawn (seeded, sorted), or all."""
    if not records or len(data) <= records:
        return data
    rng = np.random.default_rng([seed, 29])
    return data.subset(np.sort(rng.choice(len(data), size=records, replace=False)))


def scores(
    task: Task, fed: FedMethod, global_state: State, personal: Personal, records: int = 0
) -> dict:
    """The row's validation and test scores of the global state (``records``: a sample).

    With kept tensors (fedsa), every client's own model on its own splits (pooled), and the
    global model (mean of the kept tensors) on the global test set as ``global_model_test_*``.
    Error-feedback residuals (``payload``) are kept too, but are no part of a client's model.
    """
    personal = model_kept(personal)
    if not personal:
        val_set, test_set = (
            round_sample(d, records, i) for i, d in enumerate((task.val, task.test))
        )
        val = evaluate_state(task, global_state, val_set, fed)  # for model and hyper-parameters
        test = evaluate_state(task, global_state, test_set, fed)
        return {"val_acc": val.accuracy, "val_loss": val.loss, **test.as_dict("test")}
    val = evaluate_personal(task, fed, global_state, personal, "val")
    test = evaluate_personal(task, fed, global_state, personal, "test")
    shared = global_model(global_state, personal, unit_weights(task))
    glob = evaluate_state(task, shared, task.test, fed)
    return {
        "val_acc": val.accuracy,
        "val_loss": val.loss,
        **test.as_dict("test"),
        "global_model_test_acc": glob.accuracy,
        "global_model_test_loss": glob.loss,
    }


def answered(answers: SiteAnswers, what: str) -> list:
    """The sums of the nodes that answered, by client id; FederatedError when none did."""
    if not answers.sums:
        detail = "; ".join(f"client {c}: {r}" for c, r in answers.dropped.items())
        raise FederatedError(f"{what}: no site answered ({detail or 'no site asked'})")
    return [answers.sums[c] for c in sorted(answers.sums)]


def site_scores(
    task: Task, engine: SiteEvaluator, fed: FedMethod, global_state: State, ids: list[int]
) -> dict:
    """The row's scores with the data at the sites: the listed nodes' validation and test sums.

    The test scores are the server's own test set's when it has one (``evaluation`` says
    which); the row also names the nodes evaluated, those left out and the bytes moved.
    """
    server_test = task.test is not None
    answers = engine.evaluate(ids, global_state, ("val",) if server_test else ("val", "test"))
    parts = answered(answers, "evaluation")
    val = pool_evaluation(parts, "val.")
    if server_test:
        test = evaluate_state(task, global_state, task.test, fed)
    else:
        test = pool_evaluation(parts, "test.")
    return {
        "val_acc": val.accuracy,
        "val_loss": val.loss,
        **test.as_dict("test"),
        "evaluation": "server" if server_test else "federated",
        **answers.row(),
    }


def initial_scores(task: Task, engine: SiteEvaluator, fed: FedMethod, global_state: State) -> dict:
    """The init row's test scores: the global test set, or every site's test sums."""
    if task.test is not None:
        scores = evaluate_state(task, global_state, task.test, fed).as_dict("test")
        return {**scores, "evaluation": "server"} if task.sites else scores
    answers = engine.evaluate(list(range(task.n_clients)), global_state, ("test",))
    test = pool_evaluation(answered(answers, "round 0 evaluation"), "test.")
    return {**test.as_dict("test"), "evaluation": "federated", **answers.row()}


def screen(
    results: list[ClientResult], reference: State, norm_bound: float, kind: str = "fp32"
) -> tuple[list[ClientResult], dict[str, str]]:
    """(accepted answers, client -> why left out): engine errors and failed update checks.

    ``reference``: what an honest upload holds (keys, shapes, dtypes) and its distance is
    measured from (the global state, for the plain methods). An upload in ``kind``
    (``client.payload``) is decoded onto it first; an accepted answer holds the decoded state.
    """
    dropped: dict[str, str] = {}
    accepted: list[ClientResult] = []
    for res in results:
        reason = res.error
        if reason is None and kind != "fp32":
            state, reason = received_update(res.state, reference, kind)
            res = replace(res, state=state)
        reason = reason or check_update(res.state, reference, norm_bound)
        if reason is None:
            accepted.append(res)
        else:
            dropped[str(res.client)] = reason
    return accepted, dropped


def _require_enough(
    cfg: RunConfig, server_round: int, n_units: int, accepted: list, dropped: dict[str, str]
) -> None:
    if len(accepted) < min(cfg.server.min_clients, n_units):
        detail = "; ".join(f"client {c}: {r}" for c, r in dropped.items())
        raise FederatedError(
            f"round {server_round}: {len(accepted)} valid updates, fewer than "
            f"server.min_clients={cfg.server.min_clients} ({detail})"
        )


def _server_update(
    task: Task,
    cfg: RunConfig,
    global_state: State,
    opt_state: State,
    accepted: list,
    received: State | None = None,
) -> tuple[State, State]:
    """Aggregate the accepted states and take the server optimiser's step: (global, opt).

    ``received``: the broadcast the clients decoded, when it is not ``global_state`` (fp16,
    int8): the aggregate of their states is moved onto the exact state (``payload.rebase``).
    """
    states = [r.state for r in accepted]
    weights = [r.metrics["num-examples"] for r in accepted]
    s = cfg.server
    scalings = layer_scalings(task.model)
    base = global_state if received is None else received
    aggregated = aggregate_round(cfg.method, states, weights, base, scalings, s.aggregation, s.trim)
    if base is not global_state:
        aggregated = rebase(aggregated, base, global_state)
    return server_step(
        global_state, aggregated, s.optimizer, opt_state, s.lr, s.beta1, s.beta2, s.tau
    )


def basis_wire(task: Task, client: ClientConfig) -> State:
    """LoRA-SB's B and A as sent to a client (in ``client.basis_kind``)."""
    return encode_fixed(lora_sb_basis(task.model), client.basis_kind)


def basis_bytes(task: Task, fed: FedMethod, client: ClientConfig) -> int:
    """The bytes of LoRA-SB's B and A, sent once to each client (0 for other methods)."""
    return payload_bytes(basis_wire(task, client)) if fed.needs_basis else 0


def _traffic(
    cfg: RunConfig, global_state: State, ids: list[int], results: list, basis: int = 0
) -> dict:
    """This round's measured bytes: the global state down to every sampled client, states up.

    ``basis``: the bytes of B and A sent to the clients drawn for the first time.
    """
    down = payload_bytes(global_state)
    ups = [r.bytes_up for r in results if r.bytes_up]
    return {
        "bytes_down_per_client": down,
        "bytes_up_per_client": float(np.mean(ups)) if ups else 0.0,
        "basis_bytes": basis,
        "round_bytes": down * len(ids) + sum(ups) + basis,
    }


def _privacy(cfg: RunConfig, totals: Totals, accepted: list, results: list) -> tuple[Totals, dict]:
    """Count the accepted clients' DP-SGD steps; nothing without DP.

    The result is (new totals, the row's dp_epsilon: the worst answering client's, and
    dp_sigma).
    """
    if not cfg.dp.enabled:
        return totals, {}
    steps = list(totals.dp_steps)
    for r in accepted:
        steps[r.client] += int(r.metrics["dp_steps"])
    eps = [
        dpacc.epsilon(cfg.dp, r.metrics["dp_sigma"], r.metrics["dp_sample_rate"], steps[r.client])
        for r in results
        if r.metrics.get("dp_sigma") is not None
    ]
    row = {
        "dp_epsilon": max(eps) if eps else None,
        "dp_sigma": float(np.mean([r.metrics["dp_sigma"] for r in accepted])),
    }
    return replace(totals, dp_steps=tuple(steps)), row


def _training_row(accepted: list[ClientResult], reference: State) -> dict:
    """The accepted clients' example-weighted training metrics and how much their updates agree.

    ``reference``: what the clients started from, of the keys they send (their count is
    ``params_per_client``).
    """
    weights = [r.metrics["num-examples"] for r in accepted]

    def mean(key: str) -> float:
        return float(np.average([r.metrics[key] for r in accepted], weights=weights))

    return {
        "params_per_client": parameter_count(reference),
        "train_loss": mean("train_loss"),
        "train_acc": mean("train_acc"),
        "lr": accepted[0].metrics.get("lr"),
        "update_agreement": update_agreement([r.state for r in accepted], weights, reference),
    }


def run_round(
    task: Task, cfg: RunConfig, engine: Engine, server_round: int, before: Progress
) -> tuple[Progress, dict]:
    """One round: sample, train, screen, aggregate, step, evaluate, count; (progress, row)."""
    start = time.perf_counter()
    fed = method(cfg.method)
    ids = sample_clients(cfg, server_round, task.n_clients)
    kind = cfg.client.payload
    sent, received = broadcast(before.global_state, kind)  # fp32: the global state, twice
    results = engine.train(server_round, ids, sent, before.personal or None)
    seed = fresh_seed(cfg.adapter.init_seed, server_round)
    reference = upload_reference(task.model, fed, received, seed)
    accepted, dropped = screen(results, reference, cfg.server.norm_bound, kind)
    _require_enough(cfg, server_round, task.n_clients, accepted, dropped)
    glob, opt = _server_update(task, cfg, before.global_state, before.opt_state, accepted, received)
    personal = updated(before.personal, results)
    newcomers = basis_newcomers(cfg, server_round, ids, task.n_clients)
    basis = newcomers * basis_bytes(task, fed, cfg.client) if newcomers else 0  # only if sent
    traffic = _traffic(cfg, sent, ids, results, basis)  # the bytes actually sent
    totals = replace(before.totals, bytes=before.totals.bytes + traffic["round_bytes"])
    totals, privacy = _privacy(cfg, totals, accepted, results)
    row = {
        "round": server_round,
        "stage": "round",
        "clients": ids,
        "accepted": [r.client for r in accepted],
        "dropped": dropped,
        **traffic,
        "cumulative_bytes": totals.bytes,
        **_training_row(accepted, reference),
        **(
            site_scores(task, engine, fed, glob, ids)
            if task.sites
            else scores(task, fed, glob, personal, cfg.server.eval_records)
        ),
        **privacy,
    }
    row["seconds"] = time.perf_counter() - start
    return Progress(glob, opt, server_round, totals, personal), row
