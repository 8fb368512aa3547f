"""``python -m services.scoring``: settings → logs → model → app → serve until SIGTERM."""

from services.scoring import model
from services.scoring.app import build_app
from services.scoring.settings import ScoringSettings
from shared import logs
from shared.ops import Draining
from shared.runner import serve

settings = ScoringSettings()
logs.configure("scoring", settings.log_level)
draining = Draining()
app = build_app(
    settings,
    model.load(settings.model_file, warm_up_days=settings.warm_up_days),
    settings.build_clock(),
    draining,
)
serve(app, settings, draining)
