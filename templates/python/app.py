"""{{name}}: a sandcron job. It greets, counts its runs in the job's kv store,
and shows the rest of the SDK when its input asks (every key is optional):

    {"name": "Ada"}                     who to greet
    {"fetch": "https://example.com/"}   GET this URL (list its host in the job's http_allow)
    {"secret": "api-token"}             read this secret (list it in the job's secrets)
    {"fail": "why"}                     raise, to see a failed run
"""

from sandcron import Context, Input, PluginError, WitWorld, http, job, kv, log, secrets  # noqa: F401 (WitWorld: the export)


@job
def run(ctx: Context, input: Input) -> dict:
    args = input.json() or {}
    if not isinstance(args, dict):
        raise PluginError('the input is not a JSON object such as {"name": "Ada"}')
    name = args.get("name", "world")
    count = int(kv.get_text("count") or "0") + 1
    kv.set("count", str(count))
    log.info(f"hello {name}: run {count} of job {ctx.job_name}")
    reply = {"greeting": f"Hello, {name}!", "count": count}
    if "fetch" in args:
        response = http.get(args["fetch"])
        reply["fetched"] = {"status": response.status, "body": response.text()[:200]}
    if "secret" in args:
        # The run's output and log show a granted secret as [secret:NAME].
        reply["secret"] = secrets.get(args["secret"])
    if "fail" in args:
        raise ValueError(args["fail"])
    return reply
