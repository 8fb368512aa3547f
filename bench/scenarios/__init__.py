"""S1–S5, each a function ``run(ctx) -> Section`` measuring ours against its bare baseline."""
