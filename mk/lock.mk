# OpenKCM Ceremony: the hash-locked dependency files (issue 17). Included by the main Makefile.
# `make lock` resolves pyproject.toml into requirements/{test,runtime,build}.lock with the uv
# pinned in requirements/lock-tool.txt (tools/lock.py explains the settings); `make test` and
# `make iso` install from them with --require-hashes --only-binary=:all:.
.PHONY: lock lock-check

lock:
	$(PYTHON) tools/lock.py

lock-check:
	$(PYTHON) tools/lock.py --check
