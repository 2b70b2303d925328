#!/usr/bin/env bash
# Nsight Compute on one launch per spec, for the GPU machine (after ../shared/device/stage):
#   source .device/env.sh && bash scripts/profile.sh fp8:default:128:16384:full bwd:bf16:128:2048:full cudnn:bwd:128:2048:full
# Specs (HEADDIM:SEQLEN on the paper grid's batch and heads; MASK full or causal):
#   DTYPE:VARIANT:HEADDIM:SEQLEN:MASK       flash3's forward (a tuning build by name, or default)
#   bwd:DTYPE:HEADDIM:SEQLEN:MASK           flash3's backward main kernel (default mode)
#   bwd-det:DTYPE:HEADDIM:SEQLEN:MASK       the same in deterministic mode
#   bwd-build:DTYPE:VARIANT:HEADDIM:SEQLEN:MASK  a backward tuning build's main kernel (default mode),
#                                           through scripts/tune.mjs (build it with --extra-bwd)
#   bwd-parts:DTYPE:HEADDIM:SEQLEN:MASK     the durations alone of a default-mode call's three kernels
#                                           (pre-pass, main kernel, dQ conversion): what the fixed passes cost
#   cudnn|flash:fwd|bwd:HEADDIM:SEQLEN:MASK  PyTorch SDPA's cuDNN or FA2 kernel, bf16, through bench/peers.py
#   cudnn|flash:bwd-parts:HEADDIM:SEQLEN:MASK  the durations of every backward kernel of each of peers.py's
#                                           calls (shape check, two warm-ups, the timed one), to set beside bwd-parts
# The report goes to $OUT/ncu-<spec>.txt and the utilisation lines that matter are printed. With
# SOURCE=1 the per-instruction SASS with its stall samples goes to $OUT/ncu-<spec>-sass.csv too
# (source counters: which instructions the warps wait at, and for what), and its hottest stall
# instructions are printed (scripts/stall-top.py).
set -uo pipefail
out=${OUT:-/tmp/flash3-out}
mkdir -p "$out"
sections=(--section SpeedOfLight --section LaunchStats --section Occupancy --section ComputeWorkloadAnalysis --section WarpStateStats --section SchedulerStats
  --metrics sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active,sm__cycles_active.avg,smsp__inst_executed.sum,sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active,smsp__inst_executed_pipe_fma.avg.pct_of_peak_sustained_active,smsp__inst_executed_pipe_alu.avg.pct_of_peak_sustained_active)

# One request to bench/peers.py (greeting, one timed call after two warm-up calls, then EOF).
peer_request() {
  local backend=$1 pass=$2 headdim=$3 seqlen=$4 mask=$5
  local backward=false causal=false
  [ "$pass" = bwd ] && backward=true
  [ "$mask" = causal ] && causal=true
  printf '{"op":"time","backend":"%s","dtype":"bfloat16","backward":%s,"point":{"batch":%d,"seqlen":%d,"heads":%d,"headDim":%d,"causal":%s},"warmup":2,"iterations":1,"repetitions":1}\n' \
    "$backend" "$backward" $((16384 / seqlen)) "$seqlen" $((2048 / headdim)) "$headdim" "$causal"
}

# The command line of flash3's backward bench, one round (default mode, then deterministic), in
# the array `bench`, for ncu to launch: DTYPE HEADDIM SEQLEN MASK WARMUP.
backward_bench() {
  bench=(node dist/src/cli/main.js bench --backward --backend cuda --dtype "$1" --headdim "$2" --seqlen "$3"
    --causal "$([ "$4" = causal ] && echo yes || echo no)" --reps 1 --warmup "$5" --iters 1)
}

# Each profiled kernel's name (its first 90 characters) and duration, from a metrics-only report.
print_durations() {
  echo "== $spec"
  grep -E "^  [A-Za-z_].*\(|gpu__time_duration" "$report" | sed -E 's/^  (.{0,90}).*/\1/'
}

for spec in "$@"; do
  IFS=: read -r a b c d e f <<<"$spec"
  name="ncu-${spec//:/-}"
  report="$out/$name.txt"
  keep=()
  [ "${SOURCE:-0}" = 1 ] && keep=(--section SourceCounters -f -o "$out/$name")
  case "$a:$b" in
    bwd-parts:*)
      # One warm-up call's three launches first, then the call whose kernels are timed.
      backward_bench "$b" "$c" "$d" "$e" 1
      ncu --kernel-name regex:flash3_bwd --launch-skip 3 --launch-count 3 --metrics gpu__time_duration.sum "${bench[@]}" >"$report" 2>&1
      print_durations
      continue ;;
    bwd-build:*)
      # tune.mjs warms up 5 launches of the plan before timing; profile the first timed main kernel.
      ncu --kernel-name flash3_bwd --launch-skip 5 --launch-count 1 "${sections[@]}" "${keep[@]}" \
        node scripts/tune.mjs --backward --modes default --rounds 1 --dtype "$b" --variants "$c" --points "$d:$e:$f" >"$report" 2>&1 ;;
    bwd:* | bwd-det:*)
      # Each round of the bench runs the default mode (2 warm-up calls, then the timed one), then
      # the deterministic mode the same way: its timed call is the sixth launch.
      skip=2
      [ "$a" = bwd-det ] && skip=5
      backward_bench "$b" "$c" "$d" "$e" 2
      ncu --kernel-name flash3_bwd --launch-skip "$skip" --launch-count 1 "${sections[@]}" "${keep[@]}" "${bench[@]}" >"$report" 2>&1 ;;
    cudnn:bwd-parts | flash:bwd-parts)
      peer_request "$a" bwd "$c" "$d" "$e" | ncu --kernel-name regex:'bwd|bprop|dot_do|convert' --launch-count 40 \
        --metrics gpu__time_duration.sum python3 bench/peers.py >"$report" 2>&1
      print_durations
      continue ;;
    cudnn:* | flash:*)
      # peers.py calls once to check the shape, then warms up twice: the fourth launch is timed.
      case "$a:$b" in
        cudnn:fwd) kernel='regex:fprop' ;;
        cudnn:bwd) kernel='regex:bprop' ;;
        flash:fwd) kernel='regex:flash_fwd' ;;
        flash:bwd) kernel='regex:flash_bwd_dq_dk_dv' ;;
      esac
      peer_request "$a" "$b" "$c" "$d" "$e" | ncu --kernel-name "$kernel" --launch-skip 3 --launch-count 1 \
        "${sections[@]}" "${keep[@]}" python3 bench/peers.py >"$report" 2>&1 ;;
    *)
      # tune.mjs warms up 5 launches before timing; profile the first timed one.
      ncu --kernel-name flash3_fwd --launch-skip 5 --launch-count 1 "${sections[@]}" "${keep[@]}" \
        node scripts/tune.mjs --dtype "$a" --variants "$b" --points "$c:$d:$e" >"$report" 2>&1 ;;
  esac
  # With -o the metrics went to the report file, not to stdout: print them from there.
  if [ "${SOURCE:-0}" = 1 ] && [ -f "$out/$name.ncu-rep" ]; then
    ncu --import "$out/$name.ncu-rep" --page details >>"$report" 2>&1
    ncu --import "$out/$name.ncu-rep" --page source --csv --print-source sass >"$out/$name-sass.csv" 2>&1
    python3 scripts/stall-top.py "$out/$name-sass.csv" 12
  fi
  echo "== $spec"
  grep -E "^  [A-Za-z_].*\(|Duration|SM Active Cycles|L2 Cache Throughput|DRAM Throughput|Grid Size|Block Size|Registers Per Thread|Dynamic Shared Memory Per Block|Waves Per SM|hmma|inst_executed.sum|pipe_xu|pipe_fma|pipe_alu|Issue Slots Busy|No Eligible|Warp Cycles Per Issued" "$report" | head -24
done
