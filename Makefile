PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
EXAMPLES := 1234+5678 4095+1 9999+9999 0+0 101+1002

.PHONY: venv data tokenizer train infer certify attention pipeline anylength test bench results ablations ablations-quick clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

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
