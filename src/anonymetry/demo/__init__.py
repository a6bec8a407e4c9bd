"""``anonymetry demo``: the whole path end to end on the embedded default.

- :mod:`~anonymetry.demo.population`: a synthetic multi-device population (seeded shape).
- :mod:`~anonymetry.demo.collector`: a real ``anonymetry serve`` child process on 127.0.0.1.
- :mod:`~anonymetry.demo.send`: devices send through the SDK and the stock OpenTelemetry SDK.
- :mod:`~anonymetry.demo.assess`: the risk of what the demo would share.
- :mod:`~anonymetry.demo.run`: ``run_demo`` — every step, progress, and the summary.
"""

from anonymetry.demo.run import DemoConfig, DemoSummary, run_demo

__all__ = ["DemoConfig", "DemoSummary", "run_demo"]
