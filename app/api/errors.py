"""The one table from error codes to HTTP statuses, and the JSON error body ``{code, message}``: every
ToonifyError (app.errors) a route, a service or the middleware raises is answered here."""
from __future__ import annotations

from typing import Dict

from pydantic import BaseModel, Field
from starlette.responses import JSONResponse

from ..errors import ShuttingDown, ToonifyError, Unauthorized


class ErrorBody(BaseModel):
    """Every error: a stable code to branch on and a sentence that says what to do."""

    code: str = Field(..., description="e.g. no_face, invalid_option, queue_full, unauthorized, not_found")
    message: str = Field(..., description="what went wrong and what to do, for people")


STATUS_BY_CODE: Dict[str, int] = {
    "empty_upload": 400,
    "corrupt_image": 400,
    "missing_image": 400,
    "too_many_files": 400,
    "upload_too_large": 413,
    "image_too_large": 413,
    "unsupported_image": 415,
    "unsupported_media_type": 415,
    "image_too_small": 422,
    "no_face": 422,
    "face_too_small": 422,
    "face_index_out_of_range": 422,
    "invalid_option": 422,
    "idempotency_conflict": 422,
    "unauthorized": 401,
    "key_not_accepted": 401,
    "malformed_link": 400,
    "link_refused": 403,
    "not_found": 404,
    "not_finished": 409,
    "fast_unavailable": 409,
    "cancelled": 409,
    "queue_full": 429,
    "not_ready": 503,
    "queue_unavailable": 503,
    "models_failed": 503,
    "shutting_down": 503,
    "storage_full": 507,
    "device_out_of_memory": 503,
    "job_timeout": 500,
    "worker_lost": 500,
    "upload_missing": 410,
    "internal_error": 500,
    "bad_request": 400,
    "malformed_form": 400,
    "request_timeout": 408,
    "headers_too_large": 431,
    "too_many_faces": 422,
    "too_many_streams": 503,
    "server_busy": 503,
    "method_not_allowed": 405,
    "image_url_failed": 502,
    "image_url_timeout": 504,
}


def status_of(error: ToonifyError) -> int:
    return STATUS_BY_CODE.get(error.code, 400)


def headers_of(error: ToonifyError) -> Dict[str, str]:
    """When to try again, where the caller's job is, how to authenticate."""
    headers = {}
    if error.retry_after_s:
        headers["Retry-After"] = str(error.retry_after_s)
    if isinstance(error, ShuttingDown) and error.job_id:
        headers["Location"] = "/jobs/%s" % error.job_id
    if isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    return headers


def error_body(error: ToonifyError) -> Dict[str, str]:
    return {"code": error.code, "message": error.message}


def error_response(error: ToonifyError) -> JSONResponse:
    return JSONResponse(error_body(error), status_code=status_of(error), headers=headers_of(error) or None)
