"""Typed errors of the product. Each has a stable ``code`` and a message that tells the user what to do;
the API maps the codes to HTTP statuses in one table (app.api.errors). Services raise these, never HTTP
errors, so the CLI and the workers report the same conditions the same way."""
from __future__ import annotations

from typing import Optional


class ToonifyError(Exception):
    """Base class of every error a user can cause or fix. A class without its own ``code`` (ImageError,
    FaceError) only groups others and is never raised itself."""

    code = "error"
    retry_after_s: Optional[int] = None  # when trying again may work: after how long

    def __init__(self, message: str, retry_after_s: Optional[int] = None) -> None:
        super().__init__(message)
        self.message = message
        if retry_after_s is not None:
            self.retry_after_s = retry_after_s


class ImageError(ToonifyError):
    """The upload cannot be used as a photo."""


class EmptyUpload(ImageError):
    code = "empty_upload"


class UploadTooLarge(ImageError):
    code = "upload_too_large"


class ImageTooLarge(ImageError):
    code = "image_too_large"


class ImageTooSmall(ImageError):
    code = "image_too_small"


class UnsupportedImage(ImageError):
    code = "unsupported_image"


class CorruptImage(ImageError):
    code = "corrupt_image"


class FaceError(ToonifyError):
    """The photo decoded but has no usable face."""


class NoFaceFound(FaceError):
    code = "no_face"


class FaceTooSmall(FaceError):
    code = "face_too_small"


class FaceNotFound(FaceError):
    """A face index was asked for that the photo does not have."""

    code = "face_index_out_of_range"


class TooManyFaces(FaceError):
    """More faces were asked for than one job may project (TOONIFY_MAX_FACES)."""

    code = "too_many_faces"


class JobTimedOut(ToonifyError):
    """A worker gave up on a job that ran longer than TOONIFY_JOB_TIMEOUT_S."""

    code = "job_timeout"


class ResultNotReady(ToonifyError):
    """The job has not (or not successfully) finished, so it has no results."""

    code = "not_finished"


class NotFound(ToonifyError):
    """No such job (or not the caller's), or no such thing to download."""

    code = "not_found"


class ResultNotFound(NotFound):
    """The job has no such face, or its results expired."""


class DeviceOutOfMemory(ToonifyError):
    """Even a single face did not fit in the device's memory."""

    code = "device_out_of_memory"


class JobCancelled(ToonifyError):
    """The job was cancelled before it finished, so it has no results."""

    code = "cancelled"


class JobFailed(ToonifyError):
    """A job that ended in failure, told with the code and message recorded then (the code of the error its
    worker met, e.g. no_face, or worker_lost, upload_missing, internal_error)."""

    code = "internal_error"

    def __init__(self, code: Optional[str], message: Optional[str]) -> None:
        super().__init__(message or "toonification failed")
        self.code = code or self.code


class InternalError(ToonifyError):
    """Something failed on the server that the user can only retry."""

    code = "internal_error"


class InvalidOption(ToonifyError):
    """An option, form field or header the request may not have, or a value out of range."""

    code = "invalid_option"


class IdempotencyConflict(ToonifyError):
    """An Idempotency-Key already names a job made from another photo or other options."""

    code = "idempotency_conflict"

    def __init__(self, key: str) -> None:
        super().__init__("Idempotency-Key %r was used for another photo or other options; use a new key for a new "
                         "request" % key)


class MissingImage(ToonifyError):
    """The request has no photo in the form field 'image'."""

    code = "missing_image"


class TooManyFiles(ToonifyError):
    """More than one photo in one request."""

    code = "too_many_files"


class UnsupportedMediaType(ToonifyError):
    """The request body is not a multipart form."""

    code = "unsupported_media_type"


class MalformedForm(ToonifyError):
    """A multipart body that breaks the rules every real client keeps (app.api.multipart_guard); the message
    says what to change."""

    code = "malformed_form"


class ImageURLFailed(ToonifyError):
    """The photo's URL could not be fetched: no connection, an error answer, a broken HTTP answer, or too many
    redirects (app.api.remote_image)."""

    code = "image_url_failed"


class ImageURLTimedOut(ToonifyError):
    """The photo's URL did not deliver the photo within TOONIFY_FETCH_TIMEOUT_S."""

    code = "image_url_timeout"


class HeadersTooLarge(ToonifyError):
    """The request's headers are larger, or more, than the server reads (app.api.middleware)."""

    code = "headers_too_large"


class RequestTimedOut(ToonifyError):
    """The request body did not arrive in time."""

    code = "request_timeout"


class BadRequest(ToonifyError):
    """A request the HTTP layer refused for another reason."""

    code = "bad_request"


class MethodNotAllowed(ToonifyError):
    code = "method_not_allowed"


class Unauthorized(ToonifyError):
    """This server needs an API key, and the request sends none."""

    code = "unauthorized"


class KeyNotAccepted(Unauthorized):
    """The request sends an API key, but not one this server accepts (told apart from sending none)."""

    code = "key_not_accepted"


class MalformedLink(ToonifyError):
    """A signed link whose owner, exp or sig is not as the server writes them (repeated, non-ASCII, too long)."""

    code = "malformed_link"


class LinkRefused(ToonifyError):
    """A well-formed signed link that expired, or whose signature does not match its job."""

    code = "link_refused"


class QueueFull(ToonifyError):
    """As many jobs (or fast requests) as the server takes are waiting or running."""

    code = "queue_full"


class QueueUnavailable(ToonifyError):
    """The job queue (Redis) cannot be reached."""

    code = "queue_unavailable"


class ServerBusy(ToonifyError):
    """The server holds as many request bodies as it may at once (TOONIFY_MAX_BODY_BYTES_IN_FLIGHT)."""

    code = "server_busy"


class TooManyStreams(ToonifyError):
    """As many event streams as the server keeps are open."""

    code = "too_many_streams"


class NotReady(ToonifyError):
    """The models are still loading, or no worker can take the work now."""

    code = "not_ready"


class ModelsFailed(ToonifyError):
    """The models failed to load: only the operator can fix this."""

    code = "models_failed"


class ShuttingDown(ToonifyError):
    """The server is restarting; ``job_id``: the caller's job, which goes on after the restart."""

    code = "shutting_down"

    def __init__(self, message: str, retry_after_s: int, job_id: Optional[str] = None) -> None:
        super().__init__(message, retry_after_s)
        self.job_id = job_id
