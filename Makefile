# CoreCast testbed. Two commands for a newcomer (as root or with sudo):
#   sudo make demo   install what is missing, then run the main job
#   sudo make test   install what is missing, then run every test
VENV     ?= .venv
CORECAST := $(VENV)/bin/corecast
PYTEST   := $(VENV)/bin/python -m pytest

.PHONY: demo test smoke setup preflight bench clean figures help

help:
	@echo "make demo    set up, then run the demo experiment (unicast vs CoreCast)"
	@echo "make test    set up, then run the whole test suite"
	@echo "make smoke   set up, then a short end-to-end run (used in containers/CI)"
	@echo "make bench   set up, then run the benchmarks in bench/"
	@echo "make clean   remove leftovers of a crashed run (interfaces, processes)"

preflight:
	@scripts/preflight.sh $(MAKECMDGOALS)

setup: preflight
	@scripts/setup.sh

demo: setup
	@$(CORECAST) run demo

# Namespace tests must run, not skip (CORECAST_REQUIRE_NET=1); pytest's exit 5 (no tests ran) is a failure.
test: setup
	@CORECAST_REQUIRE_NET=$${CORECAST_REQUIRE_NET:-1} $(PYTEST) -q -p no:cacheprovider tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest ran no tests" >&2; exit 1; fi; exit $$rc

smoke: setup
	@$(CORECAST) run smoke

bench: setup
	@for b in bench/bench_*.py; do echo "== $$b"; $(VENV)/bin/python $$b || exit 1; done

figures: setup
	@$(CORECAST) figures results/reference

clean:
	@if [ -x $(CORECAST) ]; then $(CORECAST) clean; else echo "nothing set up yet"; fi
