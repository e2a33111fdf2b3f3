"""cache-warmup: asks a service to fill its caches (one GET per page of its
input), every 30 minutes and once each time the daemon starts, so a cold
service behind a restart is warm before its first visitors.

Input: {"base": "http://127.0.0.1:8098", "pages": ["/", "/pricing"]}
"""

from sandcron import Context, Input, PluginError, WitWorld, http, job, kv, log  # noqa: F401 (WitWorld: the export)


@job
def run(ctx: Context, input: Input) -> dict:
    args = input.json() or {}
    base = args.get("base")
    pages = args.get("pages") or ["/"]
    if not isinstance(base, str) or not base.startswith("http"):
        raise PluginError('base: give the service\'s URL, such as "http://127.0.0.1:8098"')
    warmed = []
    for page in pages:
        response = http.get(base.rstrip("/") + page)
        warmed.append({"page": page, "status": response.status})
    runs = int(kv.get_text("runs") or "0") + 1
    kv.set("runs", str(runs))
    log.info(f"warmed {len(warmed)} pages ({ctx.trigger}, run {runs})")
    return {"warmed": warmed, "runs": runs}
