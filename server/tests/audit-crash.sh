#!/bin/sh
# The 20-round kill -9 proof of the durable audit log, and buffered mode's
# measured loss window: once with the default rotation size, once rotating
# every 4 KiB (about every dozen lines), so that kills also land between a
# rotation's switch to the next file and its renames. Run from the
# workspace root. Takes the CPU lock itself (one test run at a time).
set -e
for rotate in "" 4096; do
    echo "== rotation size: ${rotate:-default}"
    AUDIT_CRASH_ROTATE_BYTES="$rotate" flock /tmp/dancu-cpu.lock cargo test -p dancu-server --test integration -- \
        --ignored --nocapture kill_dash_9_loses_no_answered_access_20_rounds buffered_loss_on_kill_dash_9
done
