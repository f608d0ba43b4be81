"""The bodies the API answers with, as pydantic models: they exist so that the OpenAPI document describes
every response a client generator has to type. The simple ones (health, config, styles, faces) are what their
routes return; the job views are still built as plain dicts of the same shape."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from pydantic import BaseModel, Field
from typing_extensions import Literal

from ..options import ToonifyOptions

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
WebhookEvent = Literal["start", "progress", "completed"]


class ErrorBody(BaseModel):
    """Every error: a stable code to branch on and a sentence that says what to do."""

    code: str = Field(..., description="e.g. no_face, invalid_option, queue_full, unauthorized, not_found")
    message: str = Field(..., description="what went wrong and what to do, for people")


class Health(BaseModel):
    """The liveness answer: the process and its event loop answer."""

    status: Literal["ok"]


class JobError(BaseModel):
    code: str
    message: str


class JobFace(BaseModel):
    index: int
    rect: List[int] = Field(..., description="left, top, right, bottom in photo pixels")
    score: float


class FacesFound(BaseModel):
    """What ``POST /faces`` found: the photo's size and its usable faces, largest first."""

    width: int
    height: int
    faces: List[JobFace] = Field(..., description="choose one for face=<index>")


class FaceLinks(BaseModel):
    face: int
    toon: str
    aligned: str
    reconstruction: str
    latents: str = Field(..., description="the face's W+ latents: a .npy of float32 [num_ws, 512]")


class JobLinks(BaseModel):
    self: str
    events: str
    results: Optional[List[FaceLinks]] = None
    paste: Optional[str] = None
    archive: Optional[str] = Field(None, description="a ZIP of every result (toons, crops, reconstructions, "
                                                     "latents, the pasted photo)")
    render: Optional[str] = None


class StyleEntry(BaseModel):
    """One style a job can be rendered in."""

    name: str = Field(..., description="what style= takes")
    display_name: str
    licence: str = Field("", description="the weights' licence, as the server's NAME.json says")
    default_strength: float = Field(..., ge=0, le=1, description="the strength used when a request names none")
    blended_at_load: bool = Field(False, description="a fine-tune blended with FFHQ when the server started")
    thumbnail: Optional[str] = Field(None, description="data:image/png URL: the average face in this style")


class RefusedStyle(BaseModel):
    name: str
    reason: str = Field(..., description="why the server does not serve it (e.g. another resolution)")


class StyleList(BaseModel):
    styles: List[StyleEntry] = Field(..., description="the default toon first")
    refused: List[RefusedStyle]


class PreviewFace(BaseModel):
    face: int
    toon: str = Field(..., description="link to the face's latest toon preview (256x256 JPEG)")
    reconstruction: str = Field(..., description="link to its latest FFHQ reconstruction preview")


class Preview(BaseModel):
    step: int = Field(..., description="the projection step the preview shows")
    total: int
    faces: List[PreviewFace]


class JobView(BaseModel):
    """A job as ``GET /jobs/{id}`` returns it (also the body of a 202)."""

    id: str
    status: JobStatus
    stage: str
    step: int
    total: int
    progress: float = Field(..., ge=0, le=1)
    eta_s: Optional[float] = Field(None, description="seconds left, from steady-state step times; null: unknown")
    queue_position: int
    faces: List[JobFace]
    options: ToonifyOptions
    attempts: int
    worker: Optional[str] = None
    error: Optional[JobError] = None
    created_at: float
    updated_at: float
    finished_at: Optional[float] = None
    timings: Dict[str, float] = Field(..., description="seconds per stage of the latest run: queued_s (creation to "
                                      "the run's start), then decoding_s, aligning_s, projecting_s, synthesizing_s, "
                                      "pasting_s, saving_s as the run gets through them")
    total_s: Optional[float] = Field(None, description="finished_at - created_at; null until the job ends")
    preview: Optional[Preview] = Field(None, description="a running job's latest live preview (also sent as the "
                                                         "'preview' event of its stream)")
    styles: Optional[List[str]] = Field(None, description="a succeeded job: the styles it can be rendered in "
                                                          "(style= on its result and render links)")
    links: JobLinks


class JobList(BaseModel):
    jobs: List[JobView] = Field(..., description="the caller's jobs, newest first")
    next: Optional[str] = Field(None, description="URL of the next (older) page; null on the last page")


class Limits(BaseModel):
    max_steps: int
    max_upload_bytes: int
    max_pixels: int
    max_queue: int
    max_body_bytes_in_flight: int = Field(..., description="request bodies the server holds at once; past it "
                                                           "a 503 server_busy with Retry-After")


class ServerConfig(BaseModel):
    """What a client (the web page) needs before it sends a photo."""

    defaults: ToonifyOptions
    limits: Limits
    engine: str
    test_models: bool = Field(..., description="true when the models are tiny random test models (noise, not "
                                                "faces)")
    test_models_warning: Optional[str] = None
    models_error: Optional[str] = Field(None, description="why the models cannot serve (a file missing or failing "
                                                          "to load, and what to do); null when they can")
    models_loading: bool = Field(False, description="true while the models load (ask again)")
    auth: bool = Field(..., description="true when the server needs 'Authorization: Bearer <key>'")
    webhooks: bool = Field(..., description="true when the server signs and sends webhooks")
    styles: List[str] = Field(..., description="the style names (GET /styles has the details)")


class WebhookPayload(BaseModel):
    """The JSON body POSTed to a job's webhook; ``X-Toonify-Signature: sha256=<hex HMAC-SHA256 of the body
    with the server's TOONIFY_WEBHOOK_SECRET>``."""

    event: WebhookEvent
    job: JobView


PHOTO_FORMATS = "JPEG, PNG, WebP, HEIC, BMP, TIFF, GIF"


def _request_fields(default_steps: int, max_steps: int) -> Dict[str, Any]:
    """The options model plus the other fields both bodies of ``POST /toonify`` take. Every default is valid on
    a default server, so that Swagger UI's "Try it out" (which fills in defaults, or samples where there are
    none, such as https://example.com/ for a URI) sends a request that works: no webhook, no URL."""
    schema = ToonifyOptions.model_json_schema()
    schema["properties"]["steps"].update(default=default_steps, maximum=max_steps)
    return dict(
        schema["properties"],
        method={"type": "string", "enum": ["project", "fast"], "default": "project",
                "description": "project: the faithful projection; fast: the distilled student, if the server "
                               "has one (answers at once, no job)"},
        webhook={"type": "string", "maxLength": 2000, "default": "",
                 "description": "http(s) URL that receives the job's events as signed JSON POSTs (only when the "
                                "server sets TOONIFY_WEBHOOK_SECRET: GET /config says 'webhooks'); empty: none"},
        webhook_events_filter={"type": "array", "items": {"type": "string",
                                                          "enum": ["start", "progress", "completed"]},
                               "default": [], "description": "which events to send (repeat the field or separate "
                                                             "with commas); default: all"},
    )


def form_schema(default_steps: int, max_steps: int) -> Dict[str, Any]:
    """The multipart form of ``POST /toonify``: the photo as a file, or its URL, and the other fields."""
    return {"title": "ToonifyForm", "type": "object", "additionalProperties": False,
            "description": "send the photo as the file 'image' or its URL in 'image_url' (one of them)",
            "properties": dict(
                image={"type": "string", "format": "binary", "description": "the photo (%s)" % PHOTO_FORMATS},
                image_url={"type": "string", "maxLength": 2000, "default": "",
                           "description": "instead of 'image': an http(s) URL the server fetches the photo from "
                                          "(public addresses only; within the upload's size limit and "
                                          "TOONIFY_FETCH_TIMEOUT_S)"},
                **_request_fields(default_steps, max_steps))}


def json_schema(default_steps: int, max_steps: int) -> Dict[str, Any]:
    """The JSON body of ``POST /toonify``, as Cog/Replicate and BentoML clients send it."""
    fields = _request_fields(default_steps, max_steps)
    fields["webhook_events_filter"] = dict(fields["webhook_events_filter"], description="which events to send; "
                                                                                       "default: all")
    return {"title": "ToonifyJSON", "type": "object", "additionalProperties": False, "required": ["image"],
            "properties": dict(
                image={"type": "string", "example": "https://example.org/photo.jpg",
                       "description": "the photo: a data URL (data:image/jpeg;base64,…, at most the upload size "
                                      "limit once decoded) or an http(s) URL the server fetches it from (as "
                                      "'image_url' in the form)"},
                **fields)}
