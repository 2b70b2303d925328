#!/usr/bin/env bash
# The GPU machine's whole check in one call: build the kernels (SKIP_BUILD=1: use the carried
# dist/kernels), run the GPU tests and compute-sanitizer (memcheck, racecheck, synccheck) on small
# problems side by side (nothing is timed then), check the SASS for HGMMA/UTMALDG and against local
# memory, then the benchmark grid with its peers (BENCH_BACKWARD=1: the backward's grid too). The
# logs end up in $OUT/gpu-check.tgz as well: a device call brings back only a few files.
# Usage (device run, after ../shared/device/stage): source .device/env.sh && bash scripts/gpu-check.sh [bench args]
set -uo pipefail
out=${OUT:-/tmp/flash3-out}
mkdir -p "$out"
status=0
step() { echo; echo "== $*"; }

step "device"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader | tee "$out/build.log"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  step "build kernels"
  node scripts/build-kernels.mjs 2>&1 | tee -a "$out/build.log" || status=1
fi

# The GPU tests and the six sanitizer runs share the card at once: correctness only, and the
# sanitizers are bound by the host's CPUs.
step "GPU tests and compute-sanitizer, side by side"
node --test dist/test/gpu/ > "$out/gpu-tests.log" 2>&1 &
for smoke in gpu-smoke gpu-smoke-backward; do
  for tool in memcheck racecheck synccheck; do
    log="$out/sanitize-$smoke-$tool.log"
    (compute-sanitizer --tool "$tool" --error-exitcode 3 node "scripts/$smoke.mjs" > "$log" 2>&1; echo "exit $?" >> "$log") &
  done
done
wait
grep -E "^# (tests|pass|fail|skipped)|not ok|ok [0-9]+ - " "$out/gpu-tests.log" || true
grep -q "^# fail 0" "$out/gpu-tests.log" || status=1
for smoke in gpu-smoke gpu-smoke-backward; do
  for tool in memcheck racecheck synccheck; do
    log="$out/sanitize-$smoke-$tool.log"
    echo "compute-sanitizer --tool $tool ($smoke): $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$log" | tail -n 1) $(tail -n 1 "$log")"
    [ "$(tail -n 1 "$log")" = "exit 0" ] || { grep -E "Race|hazard|access|Error|FAIL" "$log" | head -n 12; status=1; }
  done
done

step "flash3 check / run on CUDA"
node dist/src/cli/main.js check --backend cuda 2>&1 | tail -n 14 | tee -a "$out/gpu-tests.log" || status=1
python3 bench/check_run_contract.py 2>&1 | tee -a "$out/gpu-tests.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

step "SASS"
# Forward kernels: tensor-core GMMA (HGMMA 16-bit, QGMMA FP8) and TMA; no kernel may touch local memory.
for cubin in dist/kernels/*.cubin; do
  sass=$(cuobjdump -sass "$cubin")
  printf '%-32s HGMMA %4d  QGMMA %4d  UTMALDG %3d  UTMASTG %3d  LDL %d  STL %d\n' "$(basename "$cubin" .cubin)" \
    "$(grep -c HGMMA <<<"$sass")" "$(grep -c QGMMA <<<"$sass")" "$(grep -c UTMALDG <<<"$sass")" "$(grep -c UTMASTG <<<"$sass")" \
    "$(grep -cw LDL <<<"$sass")" "$(grep -cw STL <<<"$sass")"
done | tee /tmp/sass.txt
cat /tmp/sass.txt >> "$out/build.log"
awk '$11 != 0 || $13 != 0 { bad = 1 } $1 ~ /^flash_fwd/ && ($3 + $5 == 0 || $7 == 0) { bad = 1 } $1 ~ /^flash_fwd_e4m3/ && $5 == 0 { bad = 1 } END { exit bad }' /tmp/sass.txt || { echo "SASS check failed"; status=1; }

if [ "${SKIP_BENCH:-0}" != 1 ]; then
  step "ablation"
  node scripts/tune.mjs 2>&1 | tee "$out/ablation.log"
  step "bench"
  node dist/src/cli/main.js bench --backend cuda --peers --json "$out/bench.json" --svg "$out/bench.svg" "$@" 2>&1 | tee "$out/bench.log"
  if [ "${BENCH_BACKWARD:-0}" = 1 ]; then
    step "bench --backward"
    node dist/src/cli/main.js bench --backward --backend cuda --peers --json "$out/bench-backward.json" "$@" 2>&1 | tee "$out/bench-backward.log"
  fi
  if [ "${BENCH_FP16:-1}" = 1 ]; then
    node dist/src/cli/main.js bench --backend cuda --dtype fp16 --peers --json "$out/bench-fp16.json" "$@" 2>&1 | tee -a "$out/bench.log"
  fi
fi
tar czf "$out/gpu-check.tgz" -C "$out" --exclude gpu-check.tgz . 2>/dev/null
exit $status
