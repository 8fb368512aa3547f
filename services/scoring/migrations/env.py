from services.scoring.store import metadata
from shared.migrations import run_env

run_env(schema="scoring", metadata=metadata)
