# OpenKCM Ceremony: `make run` starts the TUI in a demo workspace (issue 7).
# Included by the main Makefile, which defines VENV and the `$(VENV)/.installed` target.
# The workspace (a folder standing in for the removable medium, DEMO recipient keys,
# SoftHSM2 tokens when softhsm2-util is installed, the practice genesis script preselected)
# is created once and kept; `make run-clean` deletes it.
DEMO_WORKSPACE ?= demo-workspace

.PHONY: run run-clean

$(DEMO_WORKSPACE)/workspace.json: | $(VENV)/.installed
	$(VENV)/bin/kcm-ceremony demo init --if-missing $(DEMO_WORKSPACE)

run: $(VENV)/.installed system-modules $(DEMO_WORKSPACE)/workspace.json
	$(VENV)/bin/kcm-ceremony --demo --workspace $(DEMO_WORKSPACE)

run-clean:
	rm -rf --one-file-system $(DEMO_WORKSPACE)
