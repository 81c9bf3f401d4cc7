# The two commands of the README: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test install stack-up stack-down bench chaos fuzz screenshots lint typecheck compose-check deploy-check clean messages

## run: install what is needed, start PostgreSQL, Kafka and the three services; Ctrl-C stops all
run: install
	$(PY) -m deploy.run $(if $(BROKERS),--brokers $(BROKERS))

## test: install what is needed and run the whole suite against the real local stack
test: install
	$(PY) -m pytest

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	$(PY) -c "from deploy.localstack import ensure_kafka_jars; ensure_kafka_jars()"
	touch $(STAMP)

## bench: open-loop load on its own stack (.local/bench); BENCH_ARGS="--ramp" finds the top rate
# (the bench's packages are installed with the rest: its smoke test is part of `make test`)
bench: install
	$(PY) -m bench $(BENCH_ARGS)

## chaos: kill every part in turn under load on its own stack (.local/chaos), check the history
chaos: install
	$(PY) -m bench.chaos $(if $(BROKERS),--brokers $(BROKERS)) $(CHAOS_ARGS)

## screenshots: the console's journeys in Chromium, writing the README's docs/screenshots
screenshots: install
	SCREENSHOTS_DIR=docs/screenshots $(PY) -m pytest tests/console/test_journeys.py -q

## fuzz: schemathesis over the three services (as admin, own stack in .local/fuzz): 0 failures
fuzz: install
	$(PY) -m tests.fuzz $(FUZZ_ARGS)

## messages: the console's texts extracted again into messages.pot and merged into each .po
## (the catalogues are compiled from the .po when the console starts: no .mo is kept)
messages: install
	$(PY) -m services.console.i18n update

stack-up: install
	$(PY) -m deploy.localstack up

stack-down: install
	$(PY) -m deploy.localstack down

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy shared services deploy

compose-check: install
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml

## deploy-check: promtool on the alert rules, helm lint + template of the chart, every manifest
## validated against the Kubernetes schemas and the operators' CRDs (needs Go: builds the tools)
deploy-check: compose-check
	$(PY) -m deploy.check

clean:
	rm -rf $(VENV) deploy/kafka/libs .local
