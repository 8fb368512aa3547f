"""python -m services.alerts — health changes → alerts → Slack and email (port 8002)."""

from services.alerts.app import build_app
from services.alerts.settings import AlertsSettings
from shared import logs, runner
from shared.ops import Draining

settings = AlertsSettings()
logs.configure("alerts", settings.log_level)
draining = Draining()
runner.serve(build_app(settings, draining), settings, draining)
