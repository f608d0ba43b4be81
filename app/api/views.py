"""JSON views of jobs, as the API returns them."""
from __future__ import annotations

from statistics import median
from typing import Any, Callable, Dict, List, Optional

from ..jobs.job import Job
from ..jobs.store import JobStore
from ..options import RenderOptions
from .eta import STEP_CLOCK


def eta_seconds(job: Job, store: JobStore) -> Optional[float]:
    if job.status == "running" and job.stage == "projecting":
        return STEP_CLOCK.seconds_left(job)
    if job.status == "queued":
        durations = store.recent_durations()
        return round(median(durations) * (store.position(job) + 1), 1) if durations else None
    return 0 if job.finished else None


def job_owner(job: Job) -> str:
    """The tenant (API key id) a job belongs to: the first field of its cache key."""
    return job.cache_key.split(";", 1)[0]


def job_views(store: JobStore, job_ids: List[str], sign: Callable[[Job, str], str]) -> Dict[str, Dict[str, Any]]:
    """The views of the jobs that exist (one blocking call for the event-stream poller)."""
    jobs = [store.get(job_id) for job_id in job_ids]
    return {job.id: job_view(job, store, lambda url, job=job: sign(job, url)) for job in jobs if job is not None}


def _rendered_as(job: Job, render: Optional[RenderOptions]) -> str:
    """The query that makes a result link answer at ``render``'s strength and format where they are not the
    job's own ("" when they are, or when no render options were asked for)."""
    if render is None:
        return ""
    query = ""
    if render.strength != float(job.options.get("strength", 1.0)):
        query += "&strength=%s" % render.strength
    if render.format != job.options.get("format", "png"):
        query += "&format=%s" % render.format
    return query


def job_view(job: Job, store: JobStore, sign: Optional[Callable[[str], str]] = None,
             render: Optional[RenderOptions] = None) -> Dict[str, Any]:
    """``sign`` turns a link into a short-lived signed one (API keys on), for the page's EventSource and <img>.
    ``render``: the render options of the request this view answers (a create that found the job done or
    under way): its result links and options are the request's, not the first requester's."""
    base = "/jobs/%s" % job.id
    view: Dict[str, Any] = {
        "id": job.id,
        "status": job.status,
        "stage": job.stage,
        "step": job.step,
        "total": job.total,
        "progress": round(job.step / job.total, 4) if job.total else (1.0 if job.status == "succeeded" else 0.0),
        "eta_s": eta_seconds(job, store),
        "queue_position": store.position(job),
        "faces": [{"index": i, "rect": f["rect"], "score": f["score"]} for i, f in enumerate(job.faces)],
        "options": dict(job.options, **render.model_dump()) if render is not None else job.options,
        "attempts": job.attempts,
        "worker": job.worker,
        "error": {"code": job.error_code, "message": job.error_message} if job.error_code else None,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "finished_at": job.finished_at,
        "links": {"self": base, "events": base + "/events"},
    }
    if job.status == "succeeded":
        query = _rendered_as(job, render)
        view["links"]["results"] = [
            {"face": i, "toon": "%s/result?face=%d&kind=toon%s" % (base, i, query),
             "aligned": "%s/result?face=%d&kind=aligned%s" % (base, i, query),
             "reconstruction": "%s/result?face=%d&kind=reconstruction%s" % (base, i, query)}
            for i in range(len(job.faces))
        ]
        view["links"]["paste"] = base + "/result?kind=paste" + query
        view["links"]["render"] = base + "/render?strength=0.5"
    if sign is not None:
        links = view["links"]
        for name in ("events", "paste"):
            if name in links:
                links[name] = sign(links[name])
        for result in links.get("results", []):
            for kind in ("toon", "aligned", "reconstruction"):
                result[kind] = sign(result[kind])
    return view
