"""Jobs as the API shows them: one pydantic model per shape, built from the typed job record. The routes
declare them as their ``response_model`` (so the OpenAPI document comes from these classes); event streams and
webhooks send the same model as JSON (``as_json``).

A view leaves out what does not apply (a preview while none runs, result links before success) rather than
sending it as null, as the API always has (``Sparse``)."""
from __future__ import annotations

from statistics import median
from typing import Any, Callable, ClassVar, Dict, List, Optional, Sequence, Tuple

from pydantic import BaseModel, Field, model_serializer
from typing_extensions import Literal

from ..jobs.job import Job, JobStatus
from ..jobs.previews import PREVIEW_KINDS, preview_link
from ..jobs.store import JobStore
from ..options import RenderOptions, ToonifyOptions
from .eta import STEP_CLOCK

ShownStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
WebhookEvent = Literal["start", "progress", "completed"]
Sign = Callable[[str], str]
StyleNames = Optional[Callable[[], Sequence[str]]]  # asked only for a succeeded job (redis: a call to Redis)


class Sparse(BaseModel):
    """A model whose fields named in ``left_out_when_none`` are left out of its JSON while they are None."""

    left_out_when_none: ClassVar[Tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _leave_out(self, serialize):  # no return annotation: the JSON schema stays the model's own
        data = serialize(self)
        for name in self.left_out_when_none:
            if data.get(name, ()) is None:
                del data[name]
        return data


class FaceView(BaseModel):
    index: int
    rect: List[int] = Field(..., description="left, top, right, bottom in photo pixels")
    score: float


class FacesFound(BaseModel):
    """What ``POST /faces`` found: the photo's size and its usable faces, largest first."""

    width: int
    height: int
    faces: List[FaceView] = Field(..., description="choose one for face=<index>")


class JobError(BaseModel):
    code: str
    message: str


class FaceLinks(BaseModel):
    face: int
    toon: str
    aligned: str
    reconstruction: str
    latents: str = Field(..., description="the face's W+ latents: a .npy of float32 [num_ws, 512]")


FACE_LINK_KINDS = tuple(name for name in FaceLinks.model_fields if name != "face")  # a face's result links


class JobLinks(Sparse):
    """Links to results exist once the job has succeeded."""

    left_out_when_none = ("results", "paste", "archive", "render")
    self: str
    events: str
    results: Optional[List[FaceLinks]] = None
    paste: Optional[str] = None
    archive: Optional[str] = Field(None, description="a ZIP of every result (toons, crops, reconstructions, "
                                                     "latents, the pasted photo)")
    render: Optional[str] = None


class PreviewFace(BaseModel):
    face: int
    toon: str = Field(..., description="link to the face's latest toon preview (256x256 JPEG)")
    reconstruction: str = Field(..., description="link to its latest FFHQ reconstruction preview")


class Preview(BaseModel):
    step: int = Field(..., description="the projection step the preview shows")
    total: int
    faces: List[PreviewFace]


class JobView(Sparse):
    """A job as ``GET /jobs/{id}`` returns it (also the body of a 202, of each event and of each webhook)."""

    left_out_when_none = ("preview", "styles")

    id: str
    status: ShownStatus
    stage: str
    step: int
    total: int
    progress: float = Field(..., ge=0, le=1)
    eta_s: Optional[float] = Field(..., description="seconds left, from steady-state step times; null: unknown")
    queue_position: int
    faces: List[FaceView]
    options: ToonifyOptions
    attempts: int
    worker: Optional[str]
    error: Optional[JobError]
    created_at: float
    updated_at: float
    finished_at: Optional[float]
    timings: Dict[str, float] = Field(..., description="seconds per stage of the latest run: queued_s (creation to "
                                      "the run's start), then decoding_s, aligning_s, projecting_s, synthesizing_s, "
                                      "pasting_s, saving_s as the run gets through them")
    total_s: Optional[float] = Field(..., description="finished_at - created_at; null until the job ends")
    links: JobLinks
    preview: Optional[Preview] = Field(None, description="a running job's latest live preview (also sent as the "
                                                         "'preview' event of its stream)")
    styles: Optional[List[str]] = Field(None, description="a succeeded job: the styles it can be rendered in "
                                                          "(style= on its result and render links)")

    def as_json(self) -> Dict[str, Any]:
        """What the API sends: JSON types, the fields that apply."""
        return self.model_dump(mode="json")


class JobList(BaseModel):
    jobs: List[JobView] = Field(..., description="the caller's jobs, newest first")
    next: Optional[str] = Field(..., description="URL of the next (older) page; null on the last page")


class DeletedJob(BaseModel):
    """``DELETE`` of a finished job: it is gone (a live job answers its view, cancelled)."""

    id: str
    status: ShownStatus
    deleted: Literal[True]


class WebhookPayload(BaseModel):
    """The JSON body POSTed to a job's webhook; ``X-Toonify-Signature: sha256=<hex HMAC-SHA256 of the body
    with the server's TOONIFY_WEBHOOK_SECRET>``."""

    event: WebhookEvent
    job: JobView


def eta_seconds(job: Job, store: JobStore) -> Optional[float]:
    if job.status == JobStatus.RUNNING and job.stage == "projecting":
        return STEP_CLOCK.seconds_left(job)
    if job.status == JobStatus.QUEUED:
        durations = store.recent_durations()
        return round(median(durations) * (store.position(job) + 1), 1) if durations else None
    return 0 if job.finished else None




def as_requested(view: Dict[str, Any], render: Optional[RenderOptions]) -> Dict[str, Any]:
    """A JSON ``view`` as a request with ``render`` options sees it (a create that found its job done or under
    way): its options, image links, paste and archive links at the request's strength and format, not the first
    requester's (latents do not depend on them). The links' signatures cover the job, not the query, so they
    stay valid. ``view`` itself when the request's options are the job's (its JSON can be reused)."""
    if render is None:
        return view
    rendered, query = view["options"], ""
    options = dict(rendered, **render.model_dump())
    if options == rendered:
        return view
    if render.strength != rendered["strength"]:
        query += "&strength=%s" % render.strength
    if render.format != rendered["format"]:
        query += "&format=%s" % render.format
    links = dict(view["links"])

    def plus(link: str) -> str:
        return link + query if "?" in link else link + "?" + query[1:]

    if query and "paste" in links:
        links["paste"], links["archive"] = plus(links["paste"]), plus(links["archive"])
        links["results"] = [{kind: link if kind in ("face", "latents") else plus(link)
                             for kind, link in result.items()} for result in links["results"]]
    return dict(view, options=options, links=links)


def _seconds(value: float) -> float:
    """Milliseconds are plenty; never below 0 (redis mode: the API's and the worker's clocks may differ)."""
    return round(max(value, 0.0), 3)


def timings(job: Job) -> Dict[str, float]:
    """Seconds per stage of the job's latest run (``<stage>_s``, in the order it went through them), after the
    time it waited in the queue (``queued_s``: from its creation to that run's start)."""
    waited = {} if job.started_at is None else {"queued_s": _seconds(job.started_at - job.created_at)}
    return dict(waited, **{stage + "_s": _seconds(seconds) for stage, seconds in job.timings.items()})


def _unsigned(url: str) -> str:
    return url


def preview_view(job: Job, sign: Sign = _unsigned) -> Preview:
    """The latest live preview of a running job: its step, and per face the links to its images (what the
    ``preview`` event sends, and the view's ``preview``)."""
    record = job.preview or {}
    step = int(record.get("step", 0))
    faces = [PreviewFace(face=face, **{kind: sign(preview_link(job.id, face, kind, step)) for kind in PREVIEW_KINDS})
             for face in record.get("faces", [])]
    return Preview(step=step, total=int(record.get("total", 0)), faces=faces)


def _links(job: Job, sign: Sign) -> JobLinks:
    """The job's links; those to files signed (the page's EventSource and <img> send no Authorization)."""
    base = "/jobs/%s" % job.id
    if job.status != JobStatus.SUCCEEDED:
        return JobLinks(self=base, events=sign(base + "/events"))
    results = [FaceLinks(face=i, **{kind: sign("%s/result?face=%d&kind=%s" % (base, i, kind))
                                    for kind in FACE_LINK_KINDS}) for i in range(len(job.faces))]
    return JobLinks(self=base, events=sign(base + "/events"), results=results, paste=sign(base + "/result?kind=paste"),
                    archive=sign(base + "/archive"), render=base + "/render?strength=0.5")


def job_view(job: Job, store: JobStore, sign: Sign = _unsigned, styles: StyleNames = None) -> JobView:
    """``sign`` turns a link into a short-lived signed one (API keys on), for the page's EventSource and <img>.
    ``styles``: the server's style names; a succeeded job lists them (any of them renders from its latents)."""
    succeeded = job.status == JobStatus.SUCCEEDED
    return JobView(
        id=job.id, status=job.status.value, stage=job.stage, step=job.step, total=job.total,
        progress=round(job.step / job.total, 4) if job.total else (1.0 if succeeded else 0.0),
        eta_s=eta_seconds(job, store), queue_position=store.position(job),
        faces=[FaceView(index=i, rect=list(face.rect), score=face.score) for i, face in enumerate(job.faces)],
        options=job.options, attempts=job.attempts, worker=job.worker,
        error=JobError(code=job.error_code, message=job.error_message or "") if job.error_code else None,
        created_at=job.created_at, updated_at=job.updated_at, finished_at=job.finished_at, timings=timings(job),
        total_s=None if job.finished_at is None else _seconds(job.finished_at - job.created_at),
        links=_links(job, sign),
        preview=preview_view(job, sign) if job.status == JobStatus.RUNNING and job.preview else None,
        styles=list(styles()) if succeeded and styles is not None else None)
