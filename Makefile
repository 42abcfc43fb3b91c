# `make demo` and `make test` are each the only command needed on a fresh machine:
# they create .venv and install fedsb with every dependency in one pip call.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO   := runs/demo

.PHONY: install test demo bench bench-torchsig lint clean paper tex

# Debian packages for `fedsb paper` (PDF) and the report's browser test; installed when missing.
TEX_PACKAGES := texlive-latex-base texlive-latex-recommended texlive-latex-extra latexmk
TEST_TOOLS   := poppler-utils chromium

$(STAMP): pyproject.toml requirements/constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c requirements/constraints.txt -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/pytest -q

demo: $(STAMP)
	$(BIN)/fedsb data generate --classes rml2016 --snr -10:20 --length 1024 \
		--per-class 200 --seed 0 --workers 0 --out $(DEMO)/data.npz
	$(BIN)/fedsb data preview $(DEMO)/data.npz --out $(DEMO)/preview.png
	$(BIN)/fedsb model info --config configs/finetune.toml
	$(BIN)/fedsb run --config configs/run.toml --dry-run
	rm -rf $(DEMO)/run
	$(BIN)/fedsb run --config configs/run.toml --out $(DEMO)/run
	$(BIN)/fedsb paper $(DEMO)/run
	@echo "report: $(DEMO)/run/report.html"

# TeX for the PDF (needs root and the Debian mirror); a no-op when latexmk is already there.
tex:
	@command -v latexmk >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(TEX_PACKAGES); }

paper: $(STAMP) tex
	$(BIN)/fedsb paper $(or $(RUN),$(DEMO)/run)

bench: $(STAMP)
	$(BIN)/python bench/bench_data.py
	$(BIN)/python bench/bench_train.py
	$(BIN)/python bench/bench_representations.py

# The same benchmark plus TorchSig 2.2 side by side, in a separate venv (TorchSig is heavy and
# needs the torchaudio workaround, so it never enters .venv).
bench-torchsig:
	@test -x .venv-torchsig/bin/python || $(PYTHON) -m venv .venv-torchsig
	.venv-torchsig/bin/pip install --quiet -c requirements/constraints.txt -e ".[torchsig]"
	scripts/torchsig_workaround.sh .venv-torchsig
	.venv-torchsig/bin/python bench/bench_data.py

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

clean:
	rm -rf $(VENV) .venv-torchsig runs .pytest_cache
