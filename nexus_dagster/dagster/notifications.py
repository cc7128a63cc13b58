"""Spec ``notifications`` -> Dagster run status sensors that send email, Slack and webhooks.

The daemon evaluates the sensors; each finished run that materializes the job's targets
(failure or success, as the spec asks), however it was launched (the job itself, the UI's
"Materialize" on the assets, an asset backfill, automation, another job selecting them), sends
one message naming the job, the run id, the status, an error summary (masked,
first lines only) and a link to the run in the Dagster UI.

Settings come from the environment, never from the spec:

=============================  ===============================================================
``NEXUS_DAGSTER_URL``          base URL of the Dagster UI for links (``http://127.0.0.1:3000``)
``NEXUS_SMTP_HOST``            SMTP server for email (required for ``email:``)
``NEXUS_SMTP_PORT``            default 25 (587 with ``starttls``, 465 with ``ssl``)
``NEXUS_SMTP_TLS``             ``none`` (default), ``starttls`` or ``ssl``
``NEXUS_SMTP_USER``            login user, optional
``NEXUS_SMTP_PASSWORD``        login password, optional (masked everywhere)
``NEXUS_SMTP_FROM``            sender address (default ``nexus-dagster@localhost``)
``NEXUS_SLACK_WEBHOOK_URL``    incoming webhook used for ``slack: ["#channel"]`` entries
=============================  ===============================================================

Example:
    >>> sensors = notification_sensors(job, target_keys)   # from the factory
    >>> send(Message(job="orders", run_id="abc", status="FAILURE", error="...", url="..."),
    ...      job.notifications.on_failure)  # doctest: +SKIP
"""

from __future__ import annotations

import ipaddress
import json
import os
import smtplib
import urllib.parse
from dataclasses import asdict, dataclass
from email.message import EmailMessage

import dagster as dg

from nexus_dagster import secrets
from nexus_dagster.errors import NexusError
from nexus_dagster.spec.models import ETLJob
from nexus_dagster.spec.operations import Channels

DEFAULT_UI_URL = "http://127.0.0.1:3000"
_ERROR_CHARS = 1000
_TIMEOUT = 10
#: seconds between evaluations of a notification sensor by the daemon
SENSOR_INTERVAL = 10


class NotificationError(NexusError):
    """A notification could not be delivered (the message names the channel, not secrets)."""


@dataclass
class Message:
    """What every channel receives."""

    job: str
    run_id: str
    status: str
    error: str | None
    url: str

    @property
    def subject(self) -> str:
        return f"[nexus] job {self.job}: {self.status}"

    def text(self) -> str:
        lines = [f"Job {self.job} finished with status {self.status}.", f"Run: {self.run_id}",
                 f"Link: {self.url}"]
        if self.error:
            lines += ["", "Error:", self.error]
        return "\n".join(lines)


def run_url(run_id: str) -> str:
    """Link to a run in the Dagster UI (``NEXUS_DAGSTER_URL`` + ``/runs/<id>``)."""
    base = os.environ.get("NEXUS_DAGSTER_URL", DEFAULT_UI_URL).rstrip("/")
    return f"{base}/runs/{run_id}"


def error_summary(text: str | None) -> str | None:
    """The first lines of an error, secrets masked, at most ~1000 characters."""
    if not text:
        return None
    masked = secrets.mask(text.strip())
    lines = masked.splitlines()[:12]
    summary = "\n".join(lines)
    return summary[:_ERROR_CHARS] + ("..." if len(summary) > _ERROR_CHARS else "")


def _failure_text(context) -> str | None:
    parts = []
    for event in context.get_step_failure_events():
        error = getattr(event.event_specific_data, "error", None)
        while error is not None and error.cause is not None:  # the user error, not the wrapper
            error = error.cause
        if error is not None:
            parts.append(f"step {event.step_key}: {error.message.strip()}")
    if not parts and context.failure_event.message:
        parts.append(context.failure_event.message)
    return "\n".join(parts) or None


# ----------------------------------------------------------------------------- channels
def send(message: Message, channels: Channels) -> None:
    """Deliver one message to every channel; raise one error listing the failed ones."""
    failures = []
    for kind, targets in (("email", channels.email), ("slack", channels.slack),
                          ("webhook", channels.webhook)):
        if not targets:
            continue
        try:
            if kind == "email":
                send_email(message, targets)
            elif kind == "slack":
                for target in targets:
                    send_slack(message, target)
            else:
                for target in targets:
                    post_json(_resolve(target, "webhook"), asdict(message))
        except Exception as exc:  # one channel failing must not stop the others
            failures.append(f"{kind}: {secrets.mask(exc)}")
    if failures:
        raise NotificationError("notifications failed: " + "; ".join(failures))


def _resolve(value: str, where: str) -> str:
    resolved = str(secrets.resolve(value, where=f"notifications.{where}"))
    if resolved != value or "hooks.slack.com" in resolved:
        secrets.register_secret(resolved)  # webhook URLs carry their token
    return resolved


def send_email(message: Message, recipients: list[str]) -> None:
    """Send through the SMTP server named by ``NEXUS_SMTP_*``."""
    host = os.environ.get("NEXUS_SMTP_HOST")
    if not host:
        raise NotificationError("email notifications need NEXUS_SMTP_HOST (and NEXUS_SMTP_PORT)")
    tls = os.environ.get("NEXUS_SMTP_TLS", "none").lower()
    port = int(os.environ.get("NEXUS_SMTP_PORT") or {"ssl": 465, "starttls": 587}.get(tls, 25))
    user = os.environ.get("NEXUS_SMTP_USER")
    password = os.environ.get("NEXUS_SMTP_PASSWORD")
    if password:
        secrets.register_secret(password)
    email = EmailMessage()
    email["Subject"] = message.subject
    email["From"] = os.environ.get("NEXUS_SMTP_FROM", "nexus-dagster@localhost")
    email["To"] = ", ".join(_resolve(r, "email") for r in recipients)
    email.set_content(message.text())
    smtp_class = smtplib.SMTP_SSL if tls == "ssl" else smtplib.SMTP
    with smtp_class(host, port, timeout=_TIMEOUT) as smtp:
        if tls == "starttls":
            smtp.starttls()
        if user and password:
            smtp.login(user, password)
        smtp.send_message(email)


def send_slack(message: Message, target: str) -> None:
    """Post to a Slack incoming webhook: ``target`` is the webhook URL or a channel name
    posted through ``NEXUS_SLACK_WEBHOOK_URL``."""
    target = _resolve(target, "slack")
    payload: dict[str, object] = {"text": f"*{message.subject}*\n{message.text()}"}
    if target.startswith(("http://", "https://")):
        url = target
    else:
        url = os.environ.get("NEXUS_SLACK_WEBHOOK_URL", "")
        if not url:
            raise NotificationError(
                f"slack channel {target!r} needs NEXUS_SLACK_WEBHOOK_URL (an incoming webhook)"
            )
        secrets.register_secret(url)
        payload["channel"] = target
    post_json(url, payload)


def post_json(url: str, payload: dict) -> None:
    """POST JSON; HTTPS required except to a loopback address."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme != "https" and not (parsed.scheme == "http" and _loopback(parsed.hostname)):
        raise NotificationError("webhook URLs must use https:// (http only on loopback)")
    # on first use: urllib.request (http.client, email parsing) is ~8 ms at every load
    from urllib.request import Request, urlopen

    request = Request(
        url, data=json.dumps(payload).encode(), method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "nexus-dagster"},
    )
    with urlopen(request, timeout=_TIMEOUT) as response:
        response.read()


def _loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


# ----------------------------------------------------------------------------- sensors
def materializes(
    instance: dg.DagsterInstance, run: dg.DagsterRun, job: ETLJob, keys: set[dg.AssetKey]
) -> bool:
    """True when ``run`` materializes (or was to materialize) any of the job's target ``keys``:
    a run of the job itself, a run whose asset selection holds one, or (a run of a job with
    no explicit selection) one that planned one's materialization."""
    if run.job_name == job.key:
        return True
    if run.asset_selection is not None:
        return bool(set(run.asset_selection) & keys)
    planned = instance.get_records_for_run(
        run_id=run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED, limit=1000
    ).records
    return any(r.event_log_entry.dagster_event.asset_key in keys for r in planned
               if r.event_log_entry.dagster_event is not None)


def notification_sensors(
    job: ETLJob, target_keys: list[dg.AssetKey]
) -> list[dg.SensorDefinition]:
    """One run status sensor per configured status (``on_failure``, ``on_success``); each
    watches every job of the code location and notifies for the runs that materialize the
    job's targets (:func:`materializes`)."""
    keys = set(target_keys)
    status = dg.DefaultSensorStatus.RUNNING if job.enabled else dg.DefaultSensorStatus.STOPPED
    run_statuses = {"failure": dg.DagsterRunStatus.FAILURE, "success": dg.DagsterRunStatus.SUCCESS}
    return [_status_sensor(job, keys, run_statuses[word], channels, status)
            for word, channels in job.notifications.by_status().items()]


def _status_sensor(
    job: ETLJob, keys: set[dg.AssetKey], run_status: dg.DagsterRunStatus, channels: Channels,
    default_status: dg.DefaultSensorStatus,
) -> dg.SensorDefinition:
    """The ``{job}_on_failure`` / ``{job}_on_success`` sensor: for each run of ``run_status``
    that materializes the job's targets, one message to ``channels`` (with the error summary
    for a failure)."""
    failure = run_status == dg.DagsterRunStatus.FAILURE

    @dg.run_status_sensor(
        run_status=run_status,
        name=f"{job.key}_on_{run_status.value.lower()}",
        minimum_interval_seconds=SENSOR_INTERVAL,
        default_status=default_status,
        description=f"Notify {_who(channels)} when a run materializing {job.key}'s "
                    f"targets {'fails' if failure else 'succeeds'}",
    )
    def _notify(context: dg.RunStatusSensorContext) -> None:
        if not materializes(context.instance, context.dagster_run, job, keys):
            return
        run_id = context.dagster_run.run_id
        error = error_summary(_failure_text(context.for_run_failure())) if failure else None
        send(Message(job.key, run_id, run_status.value, error, run_url(run_id)), channels)

    return _notify


def _who(channels: Channels) -> str:
    parts = []
    if channels.email:
        parts.append(f"{len(channels.email)} email address(es)")
    if channels.slack:
        parts.append(f"{len(channels.slack)} Slack target(s)")
    if channels.webhook:
        parts.append(f"{len(channels.webhook)} webhook(s)")
    return ", ".join(parts)
