/**
 * Kernel parameter structs as bytes: tensor maps first (128 bytes each), then scalars at the
 * offsets the CUDA struct's static_asserts pin. One writer for every kernel's params.
 */
import { TENSOR_MAP_BYTES } from './tensormap.js';

export interface ParamFields {
  /** Device pointers and other 64-bit values, by byte offset. */
  u64?: [number, bigint][];
  i32?: [number, number][];
  f32?: [number, number][];
}

export function packParamBlock(bytes: number, tensorMaps: Uint8Array[], fields: ParamFields): Uint8Array {
  const out = new Uint8Array(bytes);
  tensorMaps.forEach((map, i) => out.set(map.subarray(0, TENSOR_MAP_BYTES), i * TENSOR_MAP_BYTES));
  const view = new DataView(out.buffer);
  for (const [offset, value] of fields.u64 ?? []) view.setBigUint64(offset, value, true);
  for (const [offset, value] of fields.i32 ?? []) view.setInt32(offset, value, true);
  for (const [offset, value] of fields.f32 ?? []) view.setFloat32(offset, value, true);
  return out;
}
