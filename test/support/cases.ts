/** Problem sizes of one test case: batch, query/key lengths, query/kv heads, head dim. */
export interface ShapeCase {
  b: number;
  sq: number;
  sk: number;
  hq: number;
  hkv: number;
  d: number;
}
