"""Client for a self-hosted Toonify server: ``Client`` (the API as methods), ``toonify()`` (one call), typed
errors, and the ``toonify`` command (``toonify_client.cli``)::

    from toonify_client import Client, NoFace
    with Client("http://localhost:8000", api_key=None) as server:
        png = server.toonify("photo.jpg", strength=0.7, output="paste")
"""
from .client import TERMINAL, Client, toonify
from .errors import (
                     BadRequest,
                     InvalidOption,
                     NoFace,
                     NotFinished,
                     NotFound,
                     NotSupported,
                     QueueFull,
                     ServerError,
                     TooLarge,
                     ToonifyApiError,
                     Unauthorized,
                     Unavailable,
                     Unprocessable,
                     UnsupportedImage,
)
from .sse import parse_sse

__version__ = "0.1.0"
__all__ = ["TERMINAL", "BadRequest", "Client", "InvalidOption", "NoFace", "NotFinished", "NotFound", "NotSupported",
           "QueueFull", "ServerError", "TooLarge", "ToonifyApiError", "Unauthorized", "Unavailable", "Unprocessable",
           "UnsupportedImage", "parse_sse", "toonify"]
