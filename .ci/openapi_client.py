"""Uses the Python client that openapi-python-client generated from the
daemon's OpenAPI document (package `sandcron_client`) once against that
daemon: its typed answers must parse, field by field.

Usage: openapi_client.py URL ADMIN_TOKEN_FILE (see .ci/openapi).
"""

import sys

from sandcron_client import AuthenticatedClient
from sandcron_client.api.jobs import create_job, get_job, list_jobs
from sandcron_client.api.meta import get_health
from sandcron_client.api.status import get_status
from sandcron_client.models import (
    CreateJobBody,
    ErrorBody,
    HealthStatus,
    JobList,
    JobState,
    JobView,
    SchedulerState,
    StatusView,
)


def check(condition, what):
    if not condition:
        sys.exit(f"generated client: {what}")


def main():
    url, token_file = sys.argv[1], sys.argv[2]
    with open(token_file) as file:
        token = file.read().strip()
    with AuthenticatedClient(base_url=url, token=token, raise_on_unexpected_status=True) as client:
        health = get_health.sync(client=client)
        check(health is not None and health.status == HealthStatus.OK, f"GET /healthz: {health}")

        jobs = list_jobs.sync(client=client)
        check(isinstance(jobs, JobList) and jobs.jobs == [], f"GET /v1/jobs on a new daemon: {jobs}")

        body = CreateJobBody.from_dict({"name": "nightly", "plugin": "std.http", "schedule": {"every": "1h"}})
        created = create_job.sync_detailed(client=client, body=body)
        check(created.status_code == 201 and isinstance(created.parsed, JobView), f"POST /v1/jobs: {created}")
        job = created.parsed
        check(job.state == JobState.ACTIVE and job.schedule.every == "1h", f"the new job: {job}")
        check(job.next_fire_at is not None and job.next_fire_at > job.created_at, f"its next fire: {job}")

        shown = get_job.sync(client=client, id="nightly")
        check(isinstance(shown, JobView) and shown.to_dict() == job.to_dict(), f"GET /v1/jobs/nightly: {shown}")

        missing = get_job.sync_detailed(client=client, id="nothing")
        check(
            missing.status_code == 404
            and isinstance(missing.parsed, ErrorBody)
            and missing.parsed.error.code == "job_not_found",
            f"GET /v1/jobs/nothing: {missing}",
        )

        status = get_status.sync(client=client)
        check(
            isinstance(status, StatusView) and status.scheduler == SchedulerState.RUNNING and status.jobs == 1,
            f"GET /v1/status: {status}",
        )
        print(f"the generated client read {len(status.next_fires)} upcoming fire(s) of job {job.name!r}")


if __name__ == "__main__":
    main()
