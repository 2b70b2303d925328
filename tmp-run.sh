set -u
nvidia-smi --query-gpu=name --format=csv,noheader
M='regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio,regex:sm__pipe_tensor.*cycles_active\.avg\.pct_of_peak_sustained_active,sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active,l1tex__data_pipe_lsu_wavefronts_mem_shared.sum.pct_of_peak_sustained_elapsed,lts__t_sectors_op_red.sum'
timeout 300 ncu --kernel-name flash3_bwd --launch-skip 1 --launch-count 1 --section SpeedOfLight --section WarpStateStats --section SchedulerStats --section MemoryWorkloadAnalysis --metrics "$M" \
  node dist/src/cli/main.js bench --backward --headdim 128 --seqlen 16384 --causal no --warmup 1 --iters 1 --reps 1 > $OUT/ncu-bwd128.txt 2>&1; echo "bwd rc=$?"
timeout 200 ncu --kernel-name flash3_fwd --launch-skip 5 --launch-count 1 --section SpeedOfLight --section WarpStateStats --section SchedulerStats --metrics "$M" \
  node scripts/tune.mjs --variants default --points 128:1024:full > $OUT/ncu-fwd128-1k.txt 2>&1; echo "fwd rc=$?"
for f in ncu-bwd128 ncu-fwd128-1k; do echo "== $f"; grep -E "stalled_.*ratio|tensor|pipe_xu|Duration|Issue Slots Busy|No Eligible|Warp Cycles Per Issued|Compute \(SM\) Throughput|Memory Throughput|lsu_wavefronts|op_red" $OUT/$f.txt | awk '{$1=$1; print}' | awk '$NF+0 > 0.05 || !/stalled/' | head -40; done
