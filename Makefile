# Two commands: `make demo` runs the demo, `make test` runs every test lane.
# Both set up what they need (system packages as root, a virtualenv in .venv).
VENV ?= .venv
STAMP := $(VENV)/.installed

.PHONY: demo test test-vm lint bench fuzz faults clean

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh $(VENV)
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/netplex demo

test: $(STAMP)
	bash scripts/test.sh $(VENV)

lint: $(STAMP)
	bash scripts/test.sh $(VENV) lint

test-vm: $(STAMP)
	bash scripts/test.sh $(VENV) vm

fuzz: $(STAMP)
	bash scripts/test.sh $(VENV) fuzz

faults: $(STAMP)
	bash scripts/test.sh $(VENV) faults

bench: $(STAMP)
	$(VENV)/bin/python -m bench.run
	$(VENV)/bin/python -m bench.ipam

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
