#!/bin/sh
# The 20-round kill -9 proof of the durable audit log, and buffered mode's
# measured loss window. Run from the workspace root.
set -e
flock /tmp/dancu-cpu.lock cargo test -p dancu-server --test integration -- \
    --ignored --nocapture kill_dash_9_loses_no_answered_access_20_rounds buffered_loss_on_kill_dash_9
