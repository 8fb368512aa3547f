from services.alerts.store.tables import metadata
from shared.migrations import run_env

run_env(schema="alerts", metadata=metadata)
