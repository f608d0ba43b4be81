"""Typed errors of the product. Each has a stable ``code`` and a message that tells the user what to do;
the API maps the types to HTTP statuses in one table (app.api)."""
from __future__ import annotations


class ToonifyError(Exception):
    """Base class of every error a user can cause or fix."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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


class ResultNotFound(ToonifyError):
    """The job has no such face, or its results expired."""

    code = "not_found"


class DeviceOutOfMemory(ToonifyError):
    """Even a single face did not fit in the device's memory."""

    code = "device_out_of_memory"
