"""After the last round: one global temperature fitted from the clients, and the final scores.

``client_calibration_stats`` is what a client computes per Newton step (four sums on its own
validation split at the server's β); ``fit_global_temperature`` drives the steps over any
``engines.Engine`` (its ``calibration_stats(ids, global_state, beta)``). No logits or labels
leave a client.
``final_evaluation`` then scores the global test set and every client's test split before and
after scaling (the server-side evaluation of the simulation, as for accuracy);
``site_final_evaluation`` does it with the data at the sites, from the nodes' sums.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ..data.imageset import ImageSet
from ..evaluation.metrics import calibration_summary, softmax
from ..evaluation.scoring import Predictions, score
from ..models.adapters import load_adapter_state
from ..training.calibration import (
    TemperatureFit,
    TemperatureStats,
    fit_temperature,
    temperature_stats,
    total,
)
from ..training.loop import evaluate_logits, predict
from .aggregate import payload_bytes
from .methods import FedMethod
from .personal import Personal, client_logits
from .progress import State
from .rounds import answered
from .site_eval import SiteAnswers, pool_evaluation
from .site_scores import EVAL, client_row, pool_score
from .states import load_global
from .task import Task

if TYPE_CHECKING:  # engines.run_federated imports the server loop: typing only, no cycle
    from ..training.loop import Evaluation
    from .engines import Engine, SiteEvaluator

#: Bytes of one calibration step per client: β down (8 B); count, NLL, grad, hess up (32 B);
#: before the first step the final global state goes down once (its payload).
STEP_BYTES_DOWN, STEP_BYTES_UP = 8, 32


def val_units(task: Task) -> list[ImageSet]:
    """The validation split each client holds."""
    return [c.val for c in task.clients]


def client_calibration_stats(logits: torch.Tensor, data: ImageSet, beta: float) -> dict:
    """A client's answer to one calibration step: the sums of ``temperature_stats``."""
    return temperature_stats(logits.double().numpy(), data.labels.numpy(), beta).as_dict()


def fit_global_temperature(
    engine: Engine, n_units: int, global_state: State, personal: Personal | None = None
) -> tuple[TemperatureFit, float]:
    """Federated temperature scaling: (fit, bytes per unit).

    The bytes per unit are the final state down, then 40 B per Newton step. With ``personal``
    (fedsa), each client's sums are of its own model (the global state + its kept tensors).
    """
    ids = list(range(n_units))

    def stats_at(beta: float) -> TemperatureStats:
        answers = engine.calibration_stats(ids, global_state, beta, personal or None)
        return total(TemperatureStats(**a) for a in answers)

    fit = fit_temperature(stats_at)
    # the final global state goes down once (the clients trained from the previous one)
    return fit, float(payload_bytes(global_state) + fit.steps * (STEP_BYTES_DOWN + STEP_BYTES_UP))


def predictions(model, data: ImageSet, logits: torch.Tensor | None = None) -> Predictions:
    """``model``'s logits on ``data`` (or the given ones) as float64, with labels, SNRs, classes."""
    logits = (predict(model, data) if logits is None else logits).double().numpy()
    return Predictions(
        logits, data.labels.numpy(), data.snr_db.numpy().astype(np.float64), data.class_names
    )


def _test_predictions(task: Task, global_state, fed: FedMethod | None, personal) -> Predictions:
    """The global test set's predictions: the global model's, or each client's own (fedsa)."""
    if fed is None:
        load_adapter_state(task.model, global_state)
    elif not personal:
        load_global(task.model, fed, global_state)
    else:
        splits = [c.test for c in task.clients]
        logits = torch.cat(client_logits(task.model, fed, global_state, personal, splits))
        return predictions(task.model, task.test, logits)
    return predictions(task.model, task.test)  # the clients' test splits, one after another


def final_evaluation(
    task: Task,
    global_state,
    fit: TemperatureFit,
    fed: FedMethod | None = None,
    personal: Personal | None = None,
) -> tuple[Predictions, dict]:
    """(global test predictions, evaluation.json content) with the fitted temperature.

    ``fed`` loads the state as its method does (the plain adapter state without it); with
    ``personal`` (fedsa) every client's test split is scored by its own model.
    """
    test = _test_predictions(task, global_state, fed, personal)
    ends = np.cumsum([len(c.test) for c in task.clients])
    clients = []
    for i, (start, end) in enumerate(zip(np.r_[0, ends[:-1]], ends)):
        pred = test.subset(np.arange(start, end))
        before = calibration_summary(softmax(pred.logits), pred.labels)
        after = calibration_summary(softmax(pred.logits, fit.temperature), pred.labels)
        row = {"client": i, "count": len(pred.labels)}
        row["accuracy"] = float((pred.logits.argmax(1) == pred.labels).mean())
        for key in ("ece", "brier", "nll"):
            row[f"{key}_before"], row[f"{key}_after"] = before[key], after[key]
        clients.append(row)
    evaluation = {
        "test": score(test, fit.temperature),
        "calibration": calibration_record(fit),
        "clients": clients,
    }
    return test, evaluation


def calibration_record(fit: TemperatureFit) -> dict:
    """evaluation.json's ``calibration``: the fitted temperature and its Newton steps."""
    return {
        **fit.as_dict(),
        "fitted_on": "validation splits of the clients (federated sums)",
    }


def site_final_evaluation(
    task: Task, engine: SiteEvaluator, global_state: State, fit: TemperatureFit, fed: FedMethod
) -> tuple[Predictions | None, dict, Evaluation, SiteAnswers]:
    """(predictions or None, evaluation.json, the final row's test scores, the nodes' answers).

    Every site scores its test split (``clients``); the test scores are the server's own test
    set's when it has one (with its predictions), else the pooled sums of the sites (no
    predictions exist then: no logits leave a site).
    """
    answers = engine.final_scores(list(range(task.n_clients)), global_state, fit.temperature)
    parts = answered(answers, "final evaluation")
    names = tuple(task.meta["class_names"])
    clients = [client_row(c, answers.sums[c], len(names)) for c in sorted(answers.sums)]
    if task.test is None:
        pred, test = None, pool_evaluation(parts, EVAL)
        evaluation = {"test": pool_score(parts, names, fit.temperature)}
        evaluation["calibration"] = calibration_record(fit)
    else:
        pred, evaluation = final_evaluation(task, global_state, fit, fed)
        test = evaluate_logits(torch.from_numpy(pred.logits).float(), task.test)
    evaluation["clients"] = clients
    evaluation["evaluation"] = "federated" if pred is None else "server"
    return pred, evaluation, test, answers
