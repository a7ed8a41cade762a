#!/usr/bin/env bash
# The monitoring shipped in deploy/monitoring: the alert rules are valid, every alert's unit
# tests pass (a case that fires, one that stays quiet: alerts.test.yml), and the compose
# stack's Prometheus configuration loads them. Needs promtool (Debian: prometheus).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../deploy/monitoring"
promtool check rules alerts.yml
promtool test rules alerts.test.yml
promtool check config prometheus.yml
