"""Local infrastructure started by the project itself: a real Kafka broker and a real PostgreSQL.

Used by `make up` / `make down` / `make status` (through ``python -m devstack``) and by the test
suite, which starts its own broker and database on free ports in a temporary directory so that a
test run never collides with another run or with `make up`.

Nothing here is used by the services at run time.
"""
