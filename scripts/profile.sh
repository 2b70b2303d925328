#!/usr/bin/env bash
# Nsight Compute on one forward launch per spec, for the GPU machine (after ../shared/device/stage):
#   source .device/env.sh && bash scripts/profile.sh fp8:default:128:16384:full bf16:default:256:1024:causal
# Each spec is DTYPE:VARIANT:HEADDIM:SEQLEN:full|causal (the paper grid's batch and heads); the
# full report goes to $OUT/ncu-<spec>.txt and the utilisation lines that matter are printed.
set -uo pipefail
out=${OUT:-/tmp/flash3-out}
mkdir -p "$out"
for spec in "$@"; do
  IFS=: read -r dtype variant headdim seqlen mask <<<"$spec"
  report="$out/ncu-${spec//:/-}.txt"
  # tune.mjs warms up 5 launches before timing; profile the first timed one.
  ncu --kernel-name flash3_fwd --launch-skip 5 --launch-count 1 \
    --section SpeedOfLight --section ComputeWorkloadAnalysis --section WarpStateStats --section SchedulerStats \
    --metrics sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active,smsp__inst_executed_pipe_fma.avg.pct_of_peak_sustained_active,smsp__inst_executed_pipe_alu.avg.pct_of_peak_sustained_active \
    node scripts/tune.mjs --dtype "$dtype" --variants "$variant" --points "$headdim:$seqlen:$mask" >"$report" 2>&1
  echo "== $spec"
  grep -E "pipe_xu|pipe_fma|pipe_alu|Issue Slots Busy|No Eligible|Warp Cycles Per Issued|Duration" "$report" | head -12
done
