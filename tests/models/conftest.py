"""Shared by the model-platform tests: one torch thread, as for the fusion tests."""

from tests.fusion.conftest import _one_torch_thread  # noqa: F401  (an autouse fixture, registered here too)
