"""The ``cps`` command (click), installed as the ``cps_cli`` package.

A thin layer: commands call functions of :mod:`cps` that return data, then
render that data as text or ``--json``. The library itself never imports click.
"""
