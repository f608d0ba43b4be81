.PHONY: test test-containers tiny-models serve

# Builds/reuses .venv/tf1 and .venv/torch, then runs ruff and the test suite in each.
test:
	bash scripts/test.sh

# Only the container tests (also part of `make test`): both images built from docker/ with tiny models, run and
# checked, compose file included. Starts Debian's dockerd if none answers; leaves toonify:tf1 and toonify:torch.
test-containers:
	bash scripts/test-containers.sh

# Small random models under the official names, for running everything without the real weights.
tiny-models:
	.venv/tf1/bin/python -m stylegan2 make-tiny --out models

# Runs the service on :8000 with .venv/tf1 (tiny test models unless models/ holds the real ones).
serve:
	bash scripts/serve.sh
