"""Moved to :mod:`thvtest.harness` (the shared testing kit); kept for modules that still import
it by this name."""

from thvtest.harness import (
    OPERATOR_NS,
    OPERATOR_SA,
    OPERATOR_USER,
    RUNNER_IMAGE,
    RunningOperator,
    install_crds,
    operator_kubeconfig,
    run_operator,
    wait_for,
)

__all__ = [
    "OPERATOR_NS",
    "OPERATOR_SA",
    "OPERATOR_USER",
    "RUNNER_IMAGE",
    "RunningOperator",
    "install_crds",
    "operator_kubeconfig",
    "run_operator",
    "wait_for",
]
