#!/usr/bin/env bash
# Install the database servers the tests start (InfluxDB 1.x, VictoriaMetrics) when missing.
# Tests start them themselves on free loopback ports; nothing here starts a service.
set -euo pipefail
missing=()
command -v influxd >/dev/null || missing+=(influxdb)
command -v victoria-metrics >/dev/null || missing+=(victoria-metrics)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing ${missing[*]} (Debian packages) for the integration tests"
    apt-get update -qq
    # policy-rc.d keeps the packages from starting system-wide services we do not use.
    DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq "${missing[@]}"
else
    echo "error: the integration tests need: ${missing[*]}" >&2
    echo "       install them with: sudo apt-get install ${missing[*]}" >&2
    if [ "${CI:-}" = "true" ]; then exit 1; fi
fi
