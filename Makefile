.PHONY: test test-containers tiny-models serve

# Builds/reuses .venv/tf1 and .venv/torch, then runs ruff and the test suite in each.
test:
	bash scripts/test.sh

# Only the container tests (also part of `make test`): both images built from docker/ with tiny models, run and
# checked, compose file included. Starts Debian's dockerd if none answers; leaves toonify:tf1 and toonify:torch.
test-containers:
	bash scripts/test-containers.sh

# Small random models under the official names, for running everything without the real weights; kept out of
# models/ (where preload.sh puts the real ones): use them with TOONIFY_MODELS_DIR=.cache/tiny-models.
tiny-models:
	.venv/tf1/bin/python -m stylegan2 make-tiny --out .cache/tiny-models

# Runs the service on :8000: tf1 (.venv/tf1) when Python 3.7 is there, else torch (.venv/torch); the weights in
# models/, or tiny test models from .cache/tiny-models when models/ lacks them.
serve:
	bash scripts/serve.sh
