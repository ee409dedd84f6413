# Two commands a fresh clone needs: `make preview` and `make test`.
# Only python3 and make are assumed: uv is installed into .make/tools when it is not on PATH.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

UV_VERSION := 0.13.9
TOOLS := .make/tools
UV := $(or $(shell command -v uv 2>/dev/null),$(TOOLS)/bin/uv)
PY := .venv/bin/python
STACKS ?= $(patsubst Pulumi.%.yaml,%,$(wildcard Pulumi.*.yaml))

.PHONY: preview test lint typecheck unit rehearse bench clean

preview: .make/synced
	$(PY) -m preflight $(STACKS)

test: lint typecheck unit

lint: .make/synced
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/shellcheck -o all components/scripts/*.sh components/scripts/lib/*.sh components/engines/*/*.sh tests/provisioning/standins/* tools/*.sh .ci/run
	.venv/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	.venv/bin/zizmor --offline --no-progress --persona pedantic .github/workflows

typecheck: .make/synced
	.venv/bin/pyright

unit: .make/synced
	$(PY) -m pytest --numprocesses=auto --dist=loadfile -m "not drill"

# Both stacks on network namespaces, their security groups as nftables (root; `make test` runs it
# too), then the failure drills on that network, which wait on the monitoring's clock (minutes).
rehearse: .make/synced
	$(PY) -m rehearsal
	$(PY) -m pytest -p no:cacheprovider -m drill

bench: .make/synced
	$(PY) -m tools.bench_preview
	$(PY) -m tests.provisioning.bench

clean:
	rm -rf .make .venv

$(TOOLS)/bin/uv:
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.make/synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --quiet --compile-bytecode
	@mkdir -p .make && touch $@
