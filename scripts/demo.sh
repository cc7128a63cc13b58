#!/usr/bin/env bash
# README command 1: install into .venv and run the demo job on embedded defaults (no server).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
.venv/bin/nexus validate job_specs
.venv/bin/nexus run demo_orders
