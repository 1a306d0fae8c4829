"""Pure renderers: an MCPServer (+ referenced configs, operator settings) → the objects thv applies.

Nothing here performs I/O. The entry point is :func:`thv.render.desired.render`; the pieces
(:mod:`~thv.render.names`, :mod:`~thv.render.settings`, :mod:`~thv.render.runconfig`,
:mod:`~thv.render.flags`, :mod:`~thv.render.deployment`, :mod:`~thv.render.service`,
:mod:`~thv.render.rbac`, :mod:`~thv.render.authz`) are usable on their own.
"""
