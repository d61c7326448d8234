# ocirt: common tasks.  Everything that runs containers needs root.
#   make deps    install Debian packages + .venv (scripts/install-deps.sh)
#   make demo    build a busybox bundle and `ocirt run` it
#   make test    the whole pytest suite (as root)
#   make test-fast  the suite without the slow cluster tests (-m 'not cluster')
#   make test-v2 the suite inside a pure cgroup v2 VM (shared/tools/cgroup2-vm)
#   make lint    ruff check + ruff format --check
#   make bench   benchmarks/lifecycle.sh under nohybrid (ocirt vs runc vs crun)
#   make fuzz    tests/security/test_fuzz_config.py with >= 10 000 configs, a new seed each run
SHELL   := /bin/bash
VENV    ?= .venv
PY      := $(VENV)/bin/python
OCIRT   ?= $(CURDIR)/$(VENV)/bin/ocirt
SHARED  ?= $(abspath $(CURDIR)/../shared)
BUILD   := build
PYTEST_ARGS ?=

.PHONY: all deps venv demo test test-fast test-v2 lint format bench fuzz clean

all: venv

deps:
	bash scripts/install-deps.sh

# Just the venv and the editable install (no apt-get).
venv: $(VENV)/bin/ocirt
$(VENV)/bin/ocirt: pyproject.toml setup.py $(wildcard ocirt/_shim/*.c ocirt/_shim/*.h ocirt/_shim/build.py)
	NO_APT=1 bash scripts/install-deps.sh

$(BUILD)/demo-bundle/config.json: tools/mkbundle.sh tools/mkrootfs.sh
	PYTHON=$(PY) sh tools/mkbundle.sh $(BUILD)/demo-bundle sh -c 'echo "hello from ocirt: $$(uname -s) $$(hostname), pid $$$$"'

demo: venv $(BUILD)/demo-bundle/config.json
	@id=ocirt-demo-$$$$; root=$(CURDIR)/$(BUILD)/demo-root; \
	  $(OCIRT) --root $$root run --bundle $(BUILD)/demo-bundle $$id </dev/null; \
	  status=$$?; $(OCIRT) --root $$root delete --force $$id >/dev/null 2>&1; exit $$status

test: venv
	OCIRT=$(OCIRT) $(PY) -m pytest $(PYTEST_ARGS)

# Without the slow cluster tests (containerd's CRI, docker swarm): marked `cluster`.
test-fast: venv
	OCIRT=$(OCIRT) $(PY) -m pytest -m "not cluster" $(PYTEST_ARGS)

test-v2: venv
	OCIRT=$(OCIRT) $(SHARED)/tools/cgroup2-vm $(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff format .

bench: venv
	OCIRT=$(OCIRT) tools/nohybrid.sh bash benchmarks/lifecycle.sh

# CI runs the same test with 300 + 100 examples and a fixed seed.
FUZZ_EXAMPLES        ?= 9000
FUZZ_CREATE_EXAMPLES ?= 1000
fuzz: venv
	OCIRT=$(OCIRT) OCIRT_FUZZ_RANDOM=1 OCIRT_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) \
	  OCIRT_FUZZ_CREATE_EXAMPLES=$(FUZZ_CREATE_EXAMPLES) \
	  $(PY) -m pytest tests/security/test_fuzz_config.py -q -p no:cacheprovider $(PYTEST_ARGS)

clean:
	rm -rf $(BUILD) .pytest_cache .ruff_cache
	$(MAKE) -C conformance clean
