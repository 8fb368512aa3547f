"""python -m services.ingest — settings → logs → app → serve until SIGTERM."""

from __future__ import annotations

from services.ingest.app import build
from services.ingest.settings import IngestSettings
from shared import logs
from shared.ops import Draining
from shared.runner import serve


def main() -> None:
    settings = IngestSettings()
    logs.configure("ingest", settings.log_level)
    draining = Draining()
    serve(build(settings, draining), settings, draining)


if __name__ == "__main__":
    main()
