"""JSON views of jobs, as the API returns them."""
from __future__ import annotations

from statistics import median
from typing import Any, Dict

from ..jobs.job import Job
from .eta import STEP_CLOCK


def eta_seconds(job: Job, store: Any) -> Any:
    if job.status == "running" and job.stage == "projecting":
        return STEP_CLOCK.seconds_left(job)
    if job.status == "queued":
        durations = store.recent_durations()
        return round(median(durations) * (store.position(job) + 1), 1) if durations else None
    return 0 if job.finished else None


def job_view(job: Job, store: Any) -> Dict[str, Any]:
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
        "finished_at": job.finished_at,
        "links": {"self": base, "events": base + "/events"},
    }
    if job.status == "succeeded":
        view["links"]["results"] = [
            {"face": i, "toon": "%s/result?face=%d&kind=toon" % (base, i),
             "aligned": "%s/result?face=%d&kind=aligned" % (base, i),
             "reconstruction": "%s/result?face=%d&kind=reconstruction" % (base, i)}
            for i in range(len(job.faces))
        ]
        view["links"]["paste"] = base + "/result?kind=paste"
        view["links"]["render"] = base + "/render?strength=0.5"
    return view
