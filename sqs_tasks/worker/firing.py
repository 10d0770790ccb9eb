"""A periodic task's firing: its result made and claimed in one write, once per firing."""

from __future__ import annotations

import logging
from datetime import datetime

from ..aws.store import RUNNING, Claim
from ..backend import SQSBackend
from ..message import Envelope
from ..results import dumps, item_of

logger = logging.getLogger("sqs_tasks.runner")


def claim_firing(
    backend: SQSBackend, envelope: Envelope, worker_id: str, now: datetime, lease_until: datetime
) -> Claim:
    """Claim a firing's result, making it first; Claim(False, None) drops the message."""
    assert envelope.periodic is not None and envelope.scheduled is not None
    periodic = backend.config.periodic.get(envelope.periodic)
    if (
        periodic is None
        or periodic.task_path != envelope.task_path
        or not periodic.expression.fires_at(envelope.scheduled, periodic.zone)
    ):
        # The scheduled time is not signed: only a real firing of a declared schedule runs.
        logger.error(
            "Firing %s is not a firing of this backend's periodic tasks: dropped, nothing run",
            envelope.result_id,
        )
        return Claim(claimed=False, item=None)
    if periodic.skip_if_running:
        previous = periodic.expression.previous_before(envelope.scheduled, periodic.zone)
        item = backend.store.get(periodic.result_id(previous)) if previous else None
        if item is not None and item["status"]["S"] == RUNNING:
            logger.warning(
                "Firing %s skipped: the previous firing %s is still RUNNING",
                envelope.result_id,
                item["id"]["S"],
            )
            return Claim(claimed=False, item=None)
    fresh = item_of(
        envelope.result_id,
        task_path=periodic.task_path,
        backend=envelope.backend,
        queue_name=envelope.queue_name,
        priority=envelope.priority,
        args_json=dumps(periodic.args),
        kwargs_json=dumps(periodic.kwargs),
        run_after=None,
        ttl=backend.config.result_ttl,
        now=now,
    )
    fresh["periodic"] = {"S": periodic.name}
    claim = backend.store.claim_new(fresh, worker_id, now, lease_until)
    if claim.claimed:
        return claim
    # Made already: a duplicate delivery, or a retry of this firing; the ordinary claim says.
    return backend.store.claim(envelope.result_id, worker_id, now, lease_until)
