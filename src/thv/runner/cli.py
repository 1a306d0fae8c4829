"""``thv-runner``: the console script the proxy pod runs (what the operator's ``args`` start).

``thv-runner run [flags] IMAGE [-- ARGS...]`` — flag mode, or ConfigMap mode when
``--runconfig FILE`` is given or ``/etc/runconfig/runconfig.json`` exists. ``--dry-run`` prints,
as YAML, the objects the runner would apply and the effective configuration (secrets redacted),
contacting no API.

Exit status: 0 after a clean stop (SIGINT/SIGTERM) or a dry run, 1 when the runtime failed,
2 for a configuration error (one line on stderr naming the flag or key, never a secret).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any, Final

import yaml

from thv import __version__
from thv.api.contract import ContractError, parse_flags
from thv.render.common import DEFAULT_NAMESPACE
from thv.render.manifests import INPUT_KINDS, is_warning, parse_documents, render_docs
from thv.render.settings import OperatorSettings
from thv.runner.config import ConfigError, Invocation, RunnerConfig, runner_config
from thv.runner.termination import fail
from thv.runner.workload import headless_service_name, target_url, workload_objects

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
SA_NAMESPACE_FILE: Final = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
USAGE: Final = "usage: thv-runner run [flags] IMAGE [-- ARGS...]   (thv-runner run --help for the flags)"
REDACTED: Final = "<redacted>"


def pod_namespace(invocation: Invocation, env: dict[str, str] | os._Environ[str] | None = None) -> str:
    """``--namespace``, else the ServiceAccount's namespace file, else ``$POD_NAMESPACE``, else
    ``default``."""
    env = os.environ if env is None else env
    if invocation.namespace:
        return invocation.namespace
    try:
        with open(SA_NAMESPACE_FILE, encoding="utf-8") as fh:
            value = fh.read().strip()
        if value:
            return value
    except OSError:
        pass
    return env.get("POD_NAMESPACE") or "default"


def not_enforced(config: RunnerConfig) -> list[str]:
    """Settings the runconfig asks for that thv's data plane does not enforce. Tool filter and
    overrides, Cedar authorization, audit and telemetry are enforced by :mod:`thv.middleware`
    (built by the runtime before it serves)."""
    out = []
    if config.middleware.oidc_introspection_url:
        out.append("OIDC token introspection (opaque tokens)")
    return out


def effective(config: RunnerConfig, invocation: Invocation, namespace: str) -> dict[str, object]:
    """The effective configuration as a YAML-ready mapping; secrets show only as redacted."""
    w, p, m = config.workload, config.proxy, config.middleware
    target = target_url(config, namespace)
    out: dict[str, object] = {
        "kind": "RunnerConfiguration",
        "source": invocation.source,
        "namespace": namespace,
        "workload": {
            "name": w.name,
            "image": w.image,
            "args": list(w.cmd_args),
            "transport": w.transport,
            "proxyMode": w.proxy_mode if w.transport == "stdio" else None,
            "targetPort": w.target_port or None,
            "env": dict(w.env),
            "volumes": list(w.volumes),
            "permissionProfile": w.permission_profile_source or "network",
            "podTemplatePatch": bool(w.pod_template_patch),
        },
        "proxy": {
            "listen": f"{p.listen_host}:{p.listen_port}",
            "target": target
            if target is not None
            else f"stdio: pods/attach to {w.name}-0 container mcp, served as {w.proxy_mode}",
            "tokenExchange": None,
            "oidc": None,
            "tokenCache": f"on (skew {p.cache_skew:g} s)" if p.cache_enabled else "off",
            "exchangeTimeout": p.exchange_timeout,
        },
    }
    te = p.token_exchange
    proxy = out["proxy"]
    assert isinstance(proxy, dict)
    if te is not None:
        proxy["tokenExchange"] = {
            "tokenUrl": te.token_url,
            "clientId": te.client_id,
            "clientSecret": REDACTED if te.client_secret is not None else None,
            "audience": te.audience,
            "scopes": list(te.scopes),
            "subjectTokenType": te.subject_token_type,
            "headerStrategy": te.header_strategy,
            "externalTokenHeaderName": te.external_token_header_name,
        }
    if p.oidc is not None:
        proxy["oidc"] = {
            "issuer": p.oidc.issuer,
            "audience": p.oidc.audience,
            "jwksUrl": p.oidc.jwks_url,
            "resourceUrl": p.oidc.resource_url,
        }
    out["middleware"] = {
        "toolsFilter": list(m.tools_filter),
        "toolsOverride": {
            k: {"name": v.name, "description": v.description} for k, v in m.tools_override.items()
        },
        "authorization": "inline" if m.authz_config is not None else (m.authz_config_path or None),
        "audit": m.audit_config is not None or bool(m.audit_config_path),
        "telemetry": None
        if m.telemetry is None
        else {
            "endpoint": m.telemetry.endpoint,
            "serviceName": m.telemetry.service_name,
            "tracing": m.telemetry.tracing_enabled,
            "metrics": m.telemetry.metrics_enabled,
            "prometheus": m.telemetry.enable_prometheus_metrics_path,
        },
        "notEnforced": not_enforced(config),
    }
    return out


def dry_run(config: RunnerConfig, invocation: Invocation, namespace: str) -> str:
    """The ``--dry-run`` YAML: every workload object, then the effective configuration."""
    docs: list[object] = [*workload_objects(config, namespace), effective(config, invocation, namespace)]
    return "---\n".join(yaml.safe_dump(doc, sort_keys=False, width=1000) for doc in docs)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise ConfigError(f"--manifest: cannot read {path}: {exc.strerror}") from None


def _str_value(value: object) -> str | None:
    return value if isinstance(value, str) else None


def resolve_manifests(
    docs: list[dict[str, Any]],
    *,
    namespace: str | None = None,
    use_configmap: bool = False,
    warnings: list[str] | None = None,
) -> list[dict[str, Any]]:
    """The documents to dry-run. When ``docs`` hold the user's own manifests (an MCPServer with
    the MCPExternalAuthConfig, MCPToolConfig, ConfigMaps and Secrets it references), they are
    resolved by the one gatherer and resolver ``thv render`` uses
    (:func:`thv.render.manifests.render_docs`, settings as ``thv render [--use-configmap]``) into
    the objects the operator would write; documents of other kinds (already rendered objects)
    pass unchanged, the rendered ones after them. Warnings are appended to ``warnings``; any
    error is a :class:`ConfigError` (one line: the first error, and how many more)."""
    if not any(d.get("kind") == "MCPServer" for d in docs):
        return docs
    settings = OperatorSettings.from_env(use_configmap=use_configmap)
    rendered, errors = render_docs(docs, settings, namespace or DEFAULT_NAMESPACE)
    failures = [e for e in errors if not is_warning(e)]
    if failures:
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        raise ConfigError(f"--manifest: {failures[0]}{more}")
    if warnings is not None:
        warnings.extend(errors)
    return [*(d for d in docs if d.get("kind") not in INPUT_KINDS), *rendered]


def dry_run_manifests(
    text: str,
    *,
    namespace: str | None = None,
    use_configmap: bool = False,
    warnings: list[str] | None = None,
) -> str:
    """``--dry-run`` for manifests: the user's own (resolved first, see :func:`resolve_manifests`)
    or rendered ones (``thv render`` output). For each proxy Deployment (container ``toolhive``
    at index 0), run its ``args`` as the runner would, with its env (a ``secretKeyRef`` stands in
    as a placeholder, shown redacted) and, in ConfigMap mode, the ``runconfig.json`` of the
    ConfigMap its ``runconfig`` volume mounts. So ``--manifest server.yaml`` prints what
    ``thv render server.yaml | thv-runner run --dry-run`` prints."""
    docs, errors = parse_documents(text, "--manifest")
    if errors:
        raise ConfigError(errors[0])
    docs = resolve_manifests(docs, namespace=namespace, use_configmap=use_configmap, warnings=warnings)
    configmaps = {(d.get("metadata") or {}).get("name"): d for d in docs if d.get("kind") == "ConfigMap"}
    out: list[str] = []
    for doc in docs:
        if doc.get("kind") != "Deployment":
            continue
        meta = doc.get("metadata") or {}
        pod = ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
        containers = pod.get("containers") or []
        if not containers or containers[0].get("name") != "toolhive":
            continue
        container = containers[0]
        args = [str(a) for a in container.get("args") or []]
        if args[:1] != ["run"]:
            raise ConfigError(f"Deployment {meta.get('name')}: args do not start with 'run'")
        env: dict[str, str] = {}
        for var in container.get("env") or []:
            ref = ((var.get("valueFrom") or {}).get("secretKeyRef")) or None
            if ref is not None:
                env[var["name"]] = f"<Secret {ref.get('name')}/{ref.get('key')}>"
            elif "value" in var:
                env[var["name"]] = str(var["value"])
        runconfig: tuple[str, bytes] | None = None
        for volume in pod.get("volumes") or []:
            cm_name = (volume.get("configMap") or {}).get("name")
            if volume.get("name") == "runconfig" and cm_name:
                cm = configmaps.get(cm_name)
                data = ((cm or {}).get("data") or {}).get("runconfig.json")
                if data is None:
                    raise ConfigError(
                        f"Deployment {meta.get('name')}: ConfigMap {cm_name} with runconfig.json not in the manifests"
                    )
                runconfig = (f"ConfigMap {cm_name} (/etc/runconfig/runconfig.json)", str(data).encode())
        invocation, config = runner_config(args[1:], env=env, runconfig_paths=(), runconfig_data=runconfig)
        ns = namespace or meta.get("namespace") or "default"
        out.append(dry_run(config, invocation, str(ns)))
    if not out:
        raise ConfigError("--manifest: no proxy Deployment (container 'toolhive') found")
    return "---\n".join(out)


def _help() -> str:
    from thv.api.contract import FLAGS, FlagKind

    lines = [USAGE, "", "flags (--flag=value; booleans --flag or --flag=true|false; lists repeatable):"]
    for f in FLAGS:
        spelled = (
            f.name
            + ("" if f.kind is FlagKind.BOOL else "=…")
            + (" (repeatable)" if f.kind is FlagKind.LIST else "")
        )
        if f.short:
            spelled += f", {f.short}"
        note = f.help + ("" if f.upstream else " [thv]")
        lines.append(f"  {spelled:44} {note}".rstrip())
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``thv-runner`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] in (["--version"], ["version"]):
        print(f"thv-runner {__version__}")
        return EXIT_OK
    if not args or args[0] != "run":
        print(USAGE, file=sys.stderr)
        return EXIT_CONFIG
    before_dashdash = args[1 : args.index("--")] if "--" in args else args[1:]
    if "-h" in before_dashdash or "--help" in before_dashdash:
        sys.stdout.write(_help())
        return EXIT_OK
    try:
        parsed = parse_flags(args[1:])
    except ContractError as exc:
        fail(str(exc))
        return EXIT_CONFIG
    manifest = parsed.values.get("manifest")
    if (
        manifest is None
        and parsed.values.get("dry_run")
        and not parsed.positionals
        and not sys.stdin.isatty()
    ):
        manifest = "-"
    if parsed.values.get("use_configmap") and not isinstance(manifest, str):
        print("thv-runner: error: --use-configmap needs --dry-run --manifest", file=sys.stderr)
        return EXIT_CONFIG
    if isinstance(manifest, str):
        if not parsed.values.get("dry_run"):
            print("thv-runner: error: --manifest needs --dry-run", file=sys.stderr)
            return EXIT_CONFIG
        try:
            text = sys.stdin.read() if manifest == "-" else _read(manifest)
            warnings: list[str] = []
            shown = dry_run_manifests(
                text,
                namespace=_str_value(parsed.values.get("namespace")),
                use_configmap=bool(parsed.values.get("use_configmap")),
                warnings=warnings,
            )
        except ConfigError as exc:
            fail(str(exc))
            return EXIT_CONFIG
        for warning in warnings:
            print(f"thv-runner: {warning}", file=sys.stderr)
        sys.stdout.write(shown)
        return EXIT_OK
    try:
        invocation, config = runner_config(args[1:])
    except ConfigError as exc:
        fail(str(exc))
        return EXIT_CONFIG
    namespace = pod_namespace(invocation)
    if invocation.dry_run:
        sys.stdout.write(dry_run(config, invocation, namespace))
        return EXIT_OK
    from thv.runner.runtime import main_run

    return main_run(config, invocation, namespace)


__all__ = ["dry_run", "effective", "headless_service_name", "main", "not_enforced", "pod_namespace"]

if __name__ == "__main__":
    sys.exit(main())
