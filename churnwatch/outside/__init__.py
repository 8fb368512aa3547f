"""Outside data: datasets nobody here wrote, converted into churnwatch's formats, to judge its
signal (`make eval-outside`, docs/signal-quality.md)."""
