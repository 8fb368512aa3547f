"""churnwatch's benchmark harness: ``make bench`` / ``make bench-quick`` (``python -m bench``).

Each scenario measures a service against a bare baseline in the same run on the same machine
and reports ratios plus CPU time per event:

    infra.py      the run's own Kafka broker and PostgreSQL (devstack's, on free ports)
    workload.py   ~300-byte usage events over 100k accounts, Zipf-like, seeded
    loadgen.py    the HTTP load generator (closed and open loop), a process of its own
    procs.py      the services and baselines as processes (devstack.process.ServiceProcess)
    procstat.py   CPU time and memory from /proc
    sweeper.py    seeding a scored portfolio, timing sweeps and the raw SQL pass
    scenarios/    S1 ingest, S2 drain, S3 latency, S4 memory, S5 sweep
    baselines/    the bare programs each scenario is measured against
    report.py     the table and docs/benchmarks.md; findings.py: the words a run cannot measure
"""
