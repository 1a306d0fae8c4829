"""Pure renderers: an MCPServer (+ referenced configs, operator settings) → the objects thv applies.

Nothing here performs I/O. The entry point is :func:`render` (:mod:`thv.render.desired`); the
pieces are usable on their own: :mod:`~thv.render.names` (names, labels, annotation keys),
:mod:`~thv.render.settings`, :mod:`~thv.render.runconfig` (RunConfig + its ConfigMap),
:mod:`~thv.render.flags` (container args), :mod:`~thv.render.podpatch`,
:mod:`~thv.render.deployment`, :mod:`~thv.render.service`, :mod:`~thv.render.rbac`,
:mod:`~thv.render.authz`. Every failure is a :class:`RenderError` (reason, message).
"""

from thv.render.desired import Desired, render
from thv.render.errors import RenderError
from thv.render.flags import runner_ignores_token_exchange_flags
from thv.render.settings import OperatorSettings

__all__ = ["Desired", "OperatorSettings", "RenderError", "render", "runner_ignores_token_exchange_flags"]
