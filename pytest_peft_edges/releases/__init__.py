"""Every case on every release: the release index, shared environments, the sweep and ``bisect``.

Nothing here is imported by the pytest plugin; the ``peft-edges sweep`` and ``peft-edges bisect``
commands import it on demand.
"""
