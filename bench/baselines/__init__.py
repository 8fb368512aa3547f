"""The bare baselines each scenario is measured against, in the same run on the same machine.

Each is the least a program doing the same job could do with the same libraries: no
authentication, no metrics, no dedup or merge logic — only the unavoidable work.
"""
