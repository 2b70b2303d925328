source .device/env.sh
prof() { # name dtype variant point
  ncu --kernel-name flash3_fwd --launch-skip 5 --launch-count 1 --section SpeedOfLight --section ComputeWorkloadAnalysis --section WarpStateStats --section InstructionStats --section SchedulerStats --metrics sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active,sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active,smsp__inst_executed_pipe_fma.avg.pct_of_peak_sustained_active,smsp__inst_executed_pipe_alu.avg.pct_of_peak_sustained_active \
    node scripts/tune.mjs --dtype $2 --variants $3 --points $4 > $OUT/ncu-$1.txt 2>&1
  echo "== $1"; grep -E "gmma_cycles|pipe_xu|pipe_fma|pipe_alu|Issue Slots Busy|No Eligible|Stall|Executed Ipc A|Warp Cycles Per Issued|Duration" $OUT/ncu-$1.txt | head -20
}
prof fp8-128 fp8 default 128:16384:full
prof bf16-256-1k bf16 default 256:1024:full
prof bf16-128 bf16 default 128:8192:full
for c in dist/kernels/flash_fwd_e4m3_bf16_hd128.cubin; do cuobjdump -sass $c > $OUT/sass-fp8-128.txt; done
awk '{print $2}' $OUT/sass-fp8-128.txt | grep -E "^[A-Z]" | sed 's/\..*//' | sort | uniq -c | sort -rn | head -25
