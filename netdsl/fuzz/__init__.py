"""Differential testing of the whole compiler (`python -m netdsl.fuzz`).

Random, well-typed `.net` programs (generate.py, from the op menu in menu*.py and the op
registry's shape rules) are lowered by the real front end, compiled for `cpu` and run against
the `reference` interpreter: forward outputs, the loss, every gradient and a training step
(oracle.py).  A failing program is shrunk to a minimal `.net` file (shrink.py); campaign.py
runs many programs under a time budget and reports failures by kind.
"""
