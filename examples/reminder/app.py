"""reminder: posts a message to a chat webhook once, at the instant its job
names (Slack, Mattermost and Rocket.Chat incoming webhooks take
{"text": ...}).

Input: {"webhook": "http://127.0.0.1:8098/hooks/standup", "text": "Stand-up in 5 minutes"}

The job's schedule is one instant ({"at": ...}), kept on disk by the
daemon: a restart before it changes nothing, and an instant that passed
while the daemon was down runs as soon as it is back (the job's misfire
policy, run_once), late but once. A retry (of a run cut short by a crash,
or asked for) does not post again what an earlier attempt posted: the
job's kv keeps which instant went out.
"""

import time

from sandcron import Context, Input, PluginError, WitWorld, http, job, kv, log  # noqa: F401 (WitWorld: the export)


@job
def run(ctx: Context, input: Input) -> dict:
    args = input.json() or {}
    webhook = args.get("webhook")
    text = args.get("text")
    if not isinstance(webhook, str) or not webhook.startswith("http"):
        raise PluginError('webhook: give the chat\'s webhook URL, such as "https://hooks.example.com/T0/B0/x"')
    if not isinstance(text, str) or not text:
        raise PluginError('text: give the message, such as "Stand-up in 5 minutes"')
    # The instant this reminder is for: a retry's own due time is later.
    if ctx.attempt == 1:
        kv.set("instant", str(ctx.scheduled_at_ms))
    instant = kv.get_text("instant") or str(ctx.scheduled_at_ms)
    if kv.get_text("posted") == instant:
        log.info("an earlier attempt posted this reminder; nothing to do")
        return {"posted": False}
    response = http.post(webhook, {"text": text})
    if response.status >= 300:
        # Retried by the job's retry policy.
        raise PluginError(f"the webhook answered {response.status}: {response.text()[:200]}")
    kv.set("posted", instant)
    late_ms = max(0, int(time.time() * 1000) - int(instant))
    log.info(f"posted {text!r} {late_ms} ms after its instant")
    return {"posted": True, "late_ms": late_ms}
