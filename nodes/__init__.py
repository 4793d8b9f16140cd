"""Programs that run inside emulated hosts: ``python -m nodes.NAME --config FILE``."""
