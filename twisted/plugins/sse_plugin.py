"""Makes `twistd sse` exist. A declaration only: the module named here loads on use."""

from twisted.application.service import ServiceMaker

sse = ServiceMaker(
    "twisted-sse",
    "twisted_sse.tap",
    "Stream Redis pub/sub (or in-process) channels to browsers as Server-Sent Events.",
    "sse",
)
