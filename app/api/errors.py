"""The one table from error codes to HTTP statuses, and JSON error bodies ``{code, message}``."""
from __future__ import annotations

from typing import Dict, Optional

from starlette.responses import JSONResponse

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
    "unauthorized": 401,
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
    "too_many_faces": 422,
    "too_many_streams": 503,
    "method_not_allowed": 405,
}


class ApiError(Exception):
    def __init__(self, code: str, message: str, headers: Optional[Dict[str, str]] = None) -> None:
        super().__init__(message)
        self.code, self.message, self.headers = code, message, headers or {}

    @property
    def status(self) -> int:
        return STATUS_BY_CODE.get(self.code, 400)


def error_response(code: str, message: str, headers: Optional[Dict[str, str]] = None) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=STATUS_BY_CODE.get(code, 400),
                        headers=headers)
