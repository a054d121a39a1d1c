# Relay. `make dev` runs the whole system; `make test` installs what tests need and passes them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test test-miniprogram lint eval train bench-triage bench bench-timers bench-peak bench-memory bench-failover replay replay-heldout install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,train]'
	touch $(STAMP)

install: $(STAMP)

dev: $(STAMP)
	$(BIN)/relay dev

lint: $(STAMP)
	$(BIN)/ruff check relay routing adapters tests
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest -q
	$(MAKE) test-miniprogram

# The parents' mini-program (miniprogram/README.md): eslint and its page tests against a real relay serve/worker.
# npm ci (exact versions from package-lock.json) runs again only when the lock file changed, like $(STAMP).
test-miniprogram: $(STAMP)
	@if command -v node >/dev/null && command -v npm >/dev/null; then \
	  cd miniprogram && { [ node_modules/.installed -nt package-lock.json ] \
	    || { npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; }; } && npm test; \
	else \
	  echo "skipping the mini-program's tests: node and npm are not installed (apt-get install -y nodejs npm)"; \
	fi

# The writers' corpus once it is copied in; until then each tests/data set stands for one writer.
CORPUS := $(if $(wildcard tests/data/corpus/*.jsonl),tests/data/corpus,tests/data)
TRAIN_DATA := tests/data $(wildcard tests/data/corpus)

# The tuned rules on the dev set, then leave-one-writer-out: rules, model and both, for each writer.
eval: $(STAMP)
	$(BIN)/relay eval tests/data/triage_dev.jsonl --quiet
	$(BIN)/relay eval --by-writer $(CORPUS) $(if $(wildcard tests/data/corpus/*.jsonl),--also-train tests/data) --quiet

# Retrain the shipped model (routing/models/triage.npz) on every labelled set.
train: $(STAMP)
	$(BIN)/relay train $(TRAIN_DATA)

bench-triage: $(STAMP)
	$(BIN)/python tests/bench/triage_bench.py

# A school week (example school, ~1,200 students) replayed through the real system on a simulated clock;
# figures in docs/replay/summary.json and PNGs beside it.
replay: $(STAMP)
	$(BIN)/relay simulate --out docs/replay

# The same week in the words of writers the classifier never read: a model trained on every other labelled
# set (a temporary file, RELAY_TRIAGE_MODEL), then the held-out writers' messages replayed at the generated
# hours; the labelled emergencies that waited are in docs/replay-heldout/summary.json ("labelled").
HELDOUT ?= w02 w05 w08
HELDOUT_FILES := $(foreach w,$(HELDOUT),tests/data/corpus/$(w).jsonl)
replay-heldout: $(STAMP)
	model=$$(mktemp --suffix=.npz) && trap 'rm -f "$$model"' EXIT && \
	$(BIN)/relay train tests/data $(filter-out $(HELDOUT_FILES),$(wildcard tests/data/corpus/*.jsonl)) --out "$$model" && \
	RELAY_TRIAGE_MODEL="$$model" $(BIN)/relay simulate --messages $(HELDOUT_FILES) --out docs/replay-heldout

bench: $(STAMP)
	$(BIN)/python tests/bench/intake_bench.py

bench-timers: $(STAMP)
	$(BIN)/python tests/bench/timer_bench.py

# A district's morning peak (40 schools x 1,500 students, 2 API + 3 workers, steps to 400 req/s and a
# 60 s burst at 300 req/s) on this machine; figures in docs/peak/summary.json and docs/peak/peak.png.
bench-peak: $(STAMP)
	$(BIN)/python tests/bench/peak_bench.py

# Redis memory per stored request (MEMORY USAGE and INFO deltas over BENCH_REQUESTS=10000 requests of a
# 1,500-student school), requests per GiB, and the retention that keeps such a school under 1 GiB a year.
bench-memory: $(STAMP)
	$(BIN)/python tests/bench/memory_bench.py

# Redis Sentinel failover under intake: kill -9 of the master, requests lost after a 201, the gap to the first 201
# on the new master, WAIT's cost at intake (p50/p99). BENCH_FAILOVER_RUNS (3) failovers.
bench-failover: $(STAMP)
	$(BIN)/python tests/bench/failover_bench.py

clean:
	rm -rf $(VENV) .relay .pytest_cache .mypy_cache .ruff_cache
