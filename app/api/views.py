"""JSON views of jobs, as the API returns them."""
from __future__ import annotations

from statistics import median
from typing import Any, Callable, Dict, Optional, Sequence

from ..jobs.job import Job
from ..jobs.previews import PREVIEW_KINDS, preview_link
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


StyleNames = Optional[Callable[[], Sequence[str]]]  # asked only for a succeeded job (redis: a call to Redis)


def as_requested(view: Dict[str, Any], render: Optional[RenderOptions]) -> Dict[str, Any]:
    """``view`` as a request with ``render`` options sees it (a create that found its job done or under way):
    its options, image links, paste and archive links at the request's strength and format, not the first
    requester's (latents do not depend on them). The links' signatures cover the job, not the query, so they
    stay valid."""
    if render is None:
        return view
    rendered, query = RenderOptions.of(view["options"]), ""
    if render.strength != rendered.strength:
        query += "&strength=%s" % render.strength
    if render.format != rendered.format:
        query += "&format=%s" % render.format
    links = dict(view["links"])

    def plus(link: str) -> str:
        return link + query if "?" in link else link + "?" + query[1:]

    if query and "paste" in links:
        links["paste"], links["archive"] = plus(links["paste"]), plus(links["archive"])
        links["results"] = [{kind: link if kind in ("face", "latents") else plus(link)
                             for kind, link in result.items()} for result in links["results"]]
    return dict(view, options=dict(view["options"], **render.model_dump()), links=links)


def _seconds(value: float) -> float:
    """Milliseconds are plenty; never below 0 (redis mode: the API's and the worker's clocks may differ)."""
    return round(max(value, 0.0), 3)


def timings(job: Job) -> Dict[str, float]:
    """Seconds per stage of the job's latest run (``<stage>_s``, in the order it went through them), after the
    time it waited in the queue (``queued_s``: from its creation to that run's start)."""
    waited = {} if job.started_at is None else {"queued_s": _seconds(job.started_at - job.created_at)}
    return dict(waited, **{stage + "_s": _seconds(seconds) for stage, seconds in job.timings.items()})


def preview_view(job: Job, sign: Optional[Callable[[str], str]] = None) -> Dict[str, Any]:
    """The latest live preview of a running job: its step, and per face the links to its images (what the
    ``preview`` event sends, and the view's ``preview``)."""
    record, sign = job.preview or {}, sign or (lambda url: url)
    step = int(record.get("step", 0))
    faces = [dict({"face": face}, **{kind: sign(preview_link(job.id, face, kind, step)) for kind in PREVIEW_KINDS})
             for face in record.get("faces", [])]
    return {"step": step, "total": int(record.get("total", 0)), "faces": faces}


def job_view(job: Job, store: JobStore, sign: Optional[Callable[[str], str]] = None,
             styles: StyleNames = None) -> Dict[str, Any]:
    """``sign`` turns a link into a short-lived signed one (API keys on), for the page's EventSource and <img>.
    ``styles``: the server's style names; a succeeded job lists them (any of them renders from its latents)."""
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
        "options": job.options,
        "attempts": job.attempts,
        "worker": job.worker,
        "error": {"code": job.error_code, "message": job.error_message} if job.error_code else None,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "finished_at": job.finished_at,
        "timings": timings(job),
        "total_s": None if job.finished_at is None else _seconds(job.finished_at - job.created_at),
        "links": {"self": base, "events": base + "/events"},
    }
    if job.status == "running" and job.preview:
        view["preview"] = preview_view(job, sign)
    if job.status == "succeeded":
        view["links"]["results"] = [
            {"face": i, "toon": "%s/result?face=%d&kind=toon" % (base, i),
             "aligned": "%s/result?face=%d&kind=aligned" % (base, i),
             "reconstruction": "%s/result?face=%d&kind=reconstruction" % (base, i),
             "latents": "%s/result?face=%d&kind=latents" % (base, i)}
            for i in range(len(job.faces))
        ]
        view["links"]["paste"] = base + "/result?kind=paste"
        view["links"]["archive"] = base + "/archive"
        view["links"]["render"] = base + "/render?strength=0.5"
        if styles is not None:
            view["styles"] = list(styles())
    if sign is not None:
        links = view["links"]
        for name in ("events", "paste", "archive"):
            if name in links:
                links[name] = sign(links[name])
        for result in links.get("results", []):
            for kind in ("toon", "aligned", "reconstruction", "latents"):
                result[kind] = sign(result[kind])
    return view
