#!/usr/bin/env bash
# Prints the kind of CPU this machine has, as a folder name: its model name, family and model from
# /proc/cpuinfo (e.g. `amd-epyc-family25-model17`). A row of the peers bench carried over sittings
# keeps one folder per kind of CPU (benches/peers-runs/*/), because rounds timed on two kinds of CPU
# do not belong in one median: each sitting goes on with its own kind's folder.
set -euo pipefail
awk -F': *' '
  /^model name/ && n == "" { n = $2 }
  /^cpu family/ && f == "" { f = $2 }
  /^model[[:space:]]*:/ && m == "" { m = $2 }
  END {
    if (n == "" && f == "") { print "unknown-cpu" > "/dev/stderr"; exit 1 }
    gsub(/[^A-Za-z0-9]+/, "-", n); gsub(/^-|-$/, "", n)
    print tolower(n) "-family" f "-model" m
  }' /proc/cpuinfo
