"""DRF's JSON parser with orjson: a thousand-shape document parses in milliseconds. NaN is refused.

Its own module, because DRF imports parser classes while its views module is still loading.
"""

import orjson
from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return orjson.loads(stream.read() if stream is not None else b"")
        except orjson.JSONDecodeError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None


class RawImageParser(parsers.FileUploadParser):
    """The image itself as the request body, as the spec's clients send it (`curl --data-binary @image.jpg`).

    Any content type: curl says form-urlencoded when none is given. It arrives as request.FILES["file"].
    """

    media_type = "*/*"

    def get_filename(self, stream, media_type, parser_context):
        return "image"
