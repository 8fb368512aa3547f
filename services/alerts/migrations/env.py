from services.alerts.store import metadata
from shared.migrations import run_env

run_env(schema="alerts", metadata=metadata)
