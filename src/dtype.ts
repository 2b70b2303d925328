/** Element types flash3 understands, named as PyTorch names them. */
export const DTYPES = ['float64', 'float32', 'float16', 'bfloat16', 'float8_e4m3', 'float8_e5m2'] as const;
export type DType = (typeof DTYPES)[number];

const BYTES: Record<DType, number> = {
  float64: 8,
  float32: 4,
  float16: 2,
  bfloat16: 2,
  float8_e4m3: 1,
  float8_e5m2: 1,
};

export function bytesPerElement(dtype: DType): number {
  return BYTES[dtype];
}

export function isDType(x: unknown): x is DType {
  return typeof x === 'string' && (DTYPES as readonly string[]).includes(x);
}

export function isFp8(dtype: DType): boolean {
  return dtype === 'float8_e4m3' || dtype === 'float8_e5m2';
}

/** Short names accepted by the CLI (`--dtype bf16`) mapped to full names. */
export const DTYPE_ALIASES: Record<string, DType> = {
  fp64: 'float64',
  fp32: 'float32',
  fp16: 'float16',
  half: 'float16',
  bf16: 'bfloat16',
  e4m3: 'float8_e4m3',
  e5m2: 'float8_e5m2',
  fp8: 'float8_e4m3',
};
