"""`make chaos`: kill anything at any moment under load, then check the history.

Two replicas of each service on a stack of their own (`.local/chaos`), an open-loop hotline
load that retries as a hotline tool must, faults one at a time with recovery between, then all
of them close together; the check is the whole history, not a sample (bench/chaos/check.py).
"""
