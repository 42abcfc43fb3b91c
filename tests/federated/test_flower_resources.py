"""``[flower]``: what each simulated ClientApp reserves reaches the Simulation Engine's backend.

No Ray is started: ``flwr.simulation.run_simulation`` is replaced by a recorder, so the test
sees exactly the backend config the engine would get, on a machine with or without a GPU.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from fedsb.config import apply_overrides
from fedsb.errors import ConfigError
from fedsb.federated.config import FlowerConfig, RunConfig
from fedsb.federated.server import FederatedError

pytest.importorskip("flwr.simulation")

from fedsb.federated.flower.simulation import backend_config, run_simulation_engine  # noqa: E402

NO_CUDA = not torch.cuda.is_available()


def test_the_defaults_are_one_cpu_and_no_gpu_per_client():
    assert RunConfig().flower == FlowerConfig(num_cpus=1, num_gpus=0.0)
    assert backend_config(FlowerConfig()) == {"client_resources": {"num_cpus": 1, "num_gpus": 0.0}}


def test_the_config_keys_reach_run_simulation(monkeypatch):
    """flower.num_gpus / num_cpus of the config are what run_simulation is called with."""
    import flwr.simulation

    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # the check sees "a GPU"
    monkeypatch.setattr(flwr.simulation, "run_simulation", lambda **kw: calls.append(kw))
    cfg = apply_overrides(
        RunConfig(), ["engine='flower'", "flower.num_gpus=0.25", "flower.num_cpus=2"]
    )
    task = SimpleNamespace(units=[0, 1, 2])
    with pytest.raises(FederatedError, match="ended without a result"):  # the recorder ran none
        run_simulation_engine(task, cfg, None, None, None)
    [call] = calls
    assert call["backend_config"] == {"client_resources": {"num_cpus": 2, "num_gpus": 0.25}}
    assert call["num_supernodes"] == 3


@pytest.mark.skipif(not NO_CUDA, reason="this machine has a GPU")
def test_gpu_shares_without_cuda_are_refused_before_ray_starts(monkeypatch):
    import flwr.simulation

    monkeypatch.setattr(flwr.simulation, "run_simulation", lambda **kw: pytest.fail("started"))
    cfg = apply_overrides(RunConfig(), ["flower.num_gpus=0.5"])
    with pytest.raises(ConfigError) as info:
        run_simulation_engine(SimpleNamespace(units=[0, 1]), cfg, None, None, None)
    assert str(info.value) == (
        f"flower.num_gpus: 0.5 but torch {torch.__version__} sees no CUDA device; set it to 0"
    )


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("flower.num_gpus=1.5", "flower.num_gpus: must be in [0, 1], got 1.5"),
        ("flower.num_gpus=-0.1", "flower.num_gpus: must be in [0, 1], got -0.1"),
        ("flower.num_cpus=0", "flower.num_cpus: must be >= 1, got 0"),
        ("flower.gpus=1", "flower.gpus: unknown key"),
    ],
)
def test_bad_resources_are_one_line_config_errors(item, message):
    with pytest.raises(ConfigError) as info:
        apply_overrides(RunConfig(), [item])
    assert str(info.value).startswith(message)
