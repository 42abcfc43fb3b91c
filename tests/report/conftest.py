"""The report tests reuse the federated tests' tiny pretrained backbone (session fixture)."""

from tests.federated.conftest import workspace  # noqa: F401  (a pytest fixture)
