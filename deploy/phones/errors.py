"""Twilio's REST errors: the codes and the JSON shape its clients parse.

The messages are Twilio's wording without the number in question: phone numbers are PHI here,
and never go into an error body.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse


class TwilioError(Exception):
    """An error as Twilio's REST API reports it: `code`, `message`, `more_info`, `status`."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": 'Basic realm="Twilio API"'} if self.status == 401 else None
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def authenticate() -> TwilioError:
    return TwilioError(401, 20003, "Authenticate")


def not_found(path: str) -> TwilioError:
    return TwilioError(404, 20404, f"The requested resource {path} was not found")


def invalid_to() -> TwilioError:
    return TwilioError(400, 21211, "Invalid 'To' Phone Number")


def missing(code: int, message: str) -> TwilioError:
    return TwilioError(400, code, message)


def unsubscribed() -> TwilioError:
    return TwilioError(400, 21610, "Attempt to send to unsubscribed recipient")


#: Delivery errors on a message (error_code, error_message) and Twilio's meaning of each.
UNREACHABLE = (30003, "Unreachable destination handset")
