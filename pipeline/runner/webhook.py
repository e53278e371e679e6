"""Tell someone when a scheduled rebuild fails: a JSON POST to a webhook URL.

The rebuild flow's ``on_failure`` and ``on_crashed`` hook (:func:`notify_failure`). The URL is
the flow run's ``webhook_url`` parameter, else the environment variable :data:`WEBHOOK_ENV` (keep
a URL that carries a token out of the deployment's parameters); with neither the hook does
nothing. The body (``Content-Type: application/json``)::

    {"flow": "fer-pipeline-rebuild", "flow_run": "amber-fox", "flow_run_id": "…",
     "state": "Failed", "message": "1 stage(s) failed: ingest@kdef; not run: align@kdef, …",
     "failed": ["ingest@kdef"], "not_run": ["align@kdef", …], "repo": "/srv/fer",
     "url": "http://127.0.0.1:4200/runs/flow-run/…"}

``url`` is the run's page when ``PREFECT_UI_URL`` is known, else null. Slack's and most chat
tools' incoming webhooks take this as is when they accept arbitrary JSON; a ``text`` key holds a
one-line summary for those that only show ``text``. A webhook that cannot be reached is logged,
never raised: it must not hide the failure it reports.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

WEBHOOK_ENV = "FER_PIPELINE_WEBHOOK_URL"
TIMEOUT_SECONDS = 10.0

log = logging.getLogger(__name__)


def webhook_url(parameters: dict[str, Any] | None) -> str | None:
    """The flow run's ``webhook_url`` parameter, else ``$FER_PIPELINE_WEBHOOK_URL``, else None."""
    url = (parameters or {}).get("webhook_url") or os.environ.get(WEBHOOK_ENV) or ""
    return url.strip() or None


def post_json(url: str, payload: dict[str, Any], timeout: float = TIMEOUT_SECONDS) -> int:
    """POST ``payload`` as JSON to ``url``; returns the HTTP status (raises on a network error)."""
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                 headers={"Content-Type": "application/json",
                                          "User-Agent": "fer-pipeline-rebuild"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status


def run_page(flow_run_id: Any) -> str | None:
    """The UI page of a flow run, when Prefect knows its UI's address."""
    from prefect.settings import PREFECT_UI_URL

    ui = PREFECT_UI_URL.value()
    return f"{ui.rstrip('/')}/runs/flow-run/{flow_run_id}" if ui else None


def failure_payload(flow: Any, flow_run: Any, state: Any, details: dict[str, Any] | None) -> dict[str, Any]:
    """The JSON body for a failed or crashed rebuild (``details``: the flow's ``failed``/``not_run``)."""
    details = details or {}
    message = " ".join(str(state.message or state.name).split())
    return {
        "flow": flow.name,
        "flow_run": flow_run.name,
        "flow_run_id": str(flow_run.id),
        "state": state.name,
        "message": message,
        "failed": list(details.get("failed", [])),
        "not_run": list(details.get("not_run", [])),
        "repo": (flow_run.parameters or {}).get("repo"),
        "url": run_page(flow_run.id),
        "text": f"{flow.name} run {flow_run.name} {state.name}: {message}",
    }


def _details(state: Any) -> dict[str, Any] | None:
    """The ``{"failed": [...], "not_run": [...]}`` a failed rebuild returns as its state's data."""
    try:
        data = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - a crash has no such data
        return None
    return data if isinstance(data, dict) else None


def notify_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect state hook: POST the failure to the configured webhook (no-op without one)."""
    url = webhook_url(flow_run.parameters)
    if url is None:
        return
    payload = failure_payload(flow, flow_run, state, _details(state))
    try:
        status = post_json(url, payload)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        log.error("webhook at %s not reached: %s", urllib.parse.urlsplit(url).netloc, exc)  # no token in logs
        return
    log.info("failure posted to webhook (HTTP %s)", status)
