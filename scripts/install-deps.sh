#!/bin/sh
# Installs the real Prometheus, promtool, Alertmanager and amtool, etcd, and
# the Chromium the remediator's status-page test drives headless, from
# Debian's packages when they are missing. Tests and the demo use them as they are.
set -eu

missing=""
command -v promtool >/dev/null 2>&1 || missing="$missing prometheus"
command -v prometheus >/dev/null 2>&1 || missing="$missing prometheus"
if ! command -v prometheus-alertmanager >/dev/null 2>&1 && ! command -v alertmanager >/dev/null 2>&1; then
	missing="$missing prometheus-alertmanager"
fi
command -v amtool >/dev/null 2>&1 || missing="$missing prometheus-alertmanager"
command -v etcd >/dev/null 2>&1 || missing="$missing etcd-server"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"

if [ -z "$missing" ]; then
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
else
	SUDO=""
fi
echo "installing:$missing" >&2
$SUDO apt-get update
# The packages' services are not wanted: tests start their own processes.
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends $(echo "$missing" | tr ' ' '\n' | sort -u)
# Debian enables and starts an etcd member on the default ports; tests start
# their own clusters on free loopback ports, so the service is switched off.
case "$missing" in *etcd-server*) $SUDO systemctl disable --now etcd >/dev/null 2>&1 || true ;; esac
