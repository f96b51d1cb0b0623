# OpenKCM Ceremony: the bootable offline ISO (issue 8). Included by the main Makefile.
# `make iso` needs root (live-build); `make iso-test` boots the result headless in qemu.
ISO_DIR      := iso_build
ISO_VERSION  := $(shell python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml","rb"))["project"]["version"])' 2>/dev/null || echo 0)
ISO_IMAGE    := $(ISO_DIR)/out/kcm-ceremony-$(ISO_VERSION)-amd64.iso
ISO_TEST_ARGS ?=

.PHONY: iso iso-test iso-clean

iso:
	bash $(ISO_DIR)/build.sh

iso-test:
	@test -f $(ISO_IMAGE) || { echo "no $(ISO_IMAGE): run 'make iso' first"; exit 1; }
	@bash $(ISO_DIR)/install-test-deps.sh
	python3 $(ISO_DIR)/boot_test.py $(ISO_TEST_ARGS) $(ISO_IMAGE)

iso-clean:
	if [ -d $(ISO_DIR)/build/lb ]; then (cd $(ISO_DIR)/build/lb && lb clean --all) || true; fi
	@if findmnt -rn -o TARGET | grep -qF "$(CURDIR)/$(ISO_DIR)/build/"; then \
		echo "mounts remain under $(ISO_DIR)/build, not deleting"; exit 1; fi
	rm -rf --one-file-system $(ISO_DIR)/build $(ISO_DIR)/out
