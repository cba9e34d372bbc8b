"""The web console: a small server-rendered FastAPI app for reviewers, compliance, content teams and auditors.

`create_app(config, services)` builds it; `likeness console serve` runs it on 127.0.0.1.
"""

from console.web.app import create_app
from console.web.config import WebConfig

__all__ = ["WebConfig", "create_app"]
