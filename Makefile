PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
EXAMPLES := 1234+5678 4095+1 9999+9999 0+0 101+1002

.PHONY: venv browser data tokenizer train infer certify attention demo pipeline anylength test bench results ablations ablations-quick clean

venv: $(VENV)/.installed

# The demo's Gradio is an optional extra for users (pip install -e ".[demo]"); the tests need it, so the venv has it.
$(VENV)/.installed: requirements.txt requirements-demo.txt pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-demo.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

# Chromium and its chromedriver from the OS packages, for the demo's browser test (tests/test_demo.py); as root.
browser:
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		{ apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium chromium-driver; }

data: venv
	$(PY) data_generator.py

tokenizer: venv
	$(PY) tokenizer.py

train: venv
	$(PY) trainer.py

infer: venv
	$(PY) inference.py $(EXAMPLES)
	$(PY) inference.py --eval

certify: venv
	$(PY) inference.py --certify

attention: venv
	$(PY) visualize_attention.py

# The browser demo on http://127.0.0.1:7860; make demo MODEL=runs/anylength/model (or a Hub repo id) for another model.
MODEL ?= model
demo: venv
	$(PY) app.py --model $(MODEL)

pipeline: data tokenizer train infer attention

anylength: venv
	$(PY) lengthgen.py --config configs/anylength.yaml

test: venv
	$(PY) -m pytest -q tests

bench: venv
	$(PY) bench/run_all.py

results: venv
	$(PY) bench/results_tables.py

ablations: venv
	$(PY) bench/ablations.py

ablations-quick: venv
	$(PY) bench/ablations.py --quick

clean:
	rm -rf data tokenizer model runs
