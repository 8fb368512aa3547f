"""python -m services.console — the web console (port 8004)."""

from services.console.app import build_app
from services.console.settings import ConsoleSettings
from shared import logs, runner
from shared.ops import Draining

settings = ConsoleSettings()
logs.configure("console", settings.log_level)
draining = Draining()
runner.serve(build_app(settings, draining), settings, draining)
