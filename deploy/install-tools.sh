#!/bin/sh
# Installs the tools that the operator tests use, on Debian or Ubuntu:
#   prometheus, promtool  deploy/deploy_test.go (dashboard and alert rules
#                         evaluated by a real Prometheus)
#   chromium              pipeline/status_test.go (status page rendered in
#                         headless Chromium)
# Without them those tests skip with a message saying so. Run as root (or
# through sudo). The Debian package starts no service when there is no
# systemd (containers); on a host with systemd, stop the packaged
# prometheus service if you do not want it: the test runs its own.
set -eu

if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		exec sudo "$0" "$@"
	fi
	echo "install-tools.sh: run as root (apt-get needs it)" >&2
	exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-tools.sh: no apt-get; install prometheus (with promtool) and chromium with your package manager" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends prometheus chromium fonts-dejavu-core
prometheus --version | head -1
promtool --version | head -1
chromium --version
