"""Containerizers: how the agent starts, watches and stops task processes.

`base.py` holds the protocol; `process.py` the plain-process containerizer (a small C
wrapper per task records its exit status so that it survives an agent restart).
"""
