// Programmatic dependent launch: a kernel launched to overlap the one before it in the stream
// (the host's overlapsPrevious) starts while that one still runs.
#pragma once

namespace flash3::ptx {

// Waits until the grids this one depends on have finished and their writes are visible.
__device__ __forceinline__ void wait_prior_grids() { asm volatile("griddepcontrol.wait;" ::: "memory"); }

// Lets the dependent grid launch now rather than when this one exits (it still waits for all of
// this grid before touching what this grid writes).
__device__ __forceinline__ void launch_dependents() { asm volatile("griddepcontrol.launch_dependents;" ::: "memory"); }

}  // namespace flash3::ptx
