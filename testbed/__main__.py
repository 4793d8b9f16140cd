"""``python -m testbed`` is the ``corecast`` command."""

from testbed.cli import main

if __name__ == "__main__":
    main()
