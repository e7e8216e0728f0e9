"""`python -m modeldeploy`: the operator process (kopf), its metrics server and liveness endpoint."""

from __future__ import annotations

import logging

import kopf

from modeldeploy.memory import dump_heap_on_signal, limit_malloc_arenas
from modeldeploy.metrics import serve_metrics
from modeldeploy.settings import get_settings


def main() -> None:
    limit_malloc_arenas()
    settings = get_settings()
    log_format = kopf.LogFormat.JSON if settings.log_format == "json" else kopf.LogFormat.FULL
    kopf.configure(debug=settings.log_level == "DEBUG", log_format=log_format, log_prefix=True)
    logging.getLogger().setLevel(settings.log_level)
    if settings.log_level != "DEBUG":  # kopf's per-event "Handler ... succeeded" lines drown ours at scale
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    serve_metrics(settings.metrics_port, settings.health_host)
    import modeldeploy.handlers  # noqa: F401  (registers the handlers)

    dump_heap_on_signal(settings.tracemalloc_frames)

    liveness = (
        f"http://{settings.health_host}:{settings.health_port}/healthz" if settings.health_port else None
    )
    # kopf installs SIGINT/SIGTERM handlers: in-flight handlers finish, watches close, exit code 0.
    kopf.run(
        clusterwide=settings.clusterwide,
        namespaces=settings.namespaces,
        liveness_endpoint=liveness,
        memo=kopf.Memo(runtime=None),
    )


if __name__ == "__main__":
    main()
