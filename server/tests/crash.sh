#!/usr/bin/env bash
# The long durability proof of the change log: ROUNDS (default 30) rounds of
# 8 concurrent writers against a real dancu-server, SIGKILL at a random
# moment in each, restart, and a check that every acknowledged birth and move
# is there, no ID was issued twice and the log replays without a gap.
# `cargo test` runs the same test with 3 rounds.
set -euo pipefail
cd "$(dirname "$0")/../.."
DANCU_CRASH_ROUNDS="${ROUNDS:-30}" cargo test --release -p dancu-server --test integration \
  crash -- --nocapture
