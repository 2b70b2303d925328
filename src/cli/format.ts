/** Number and shape formatting shared by the commands, so tables line up the same way everywhere. */

/** 3 significant digits in exponent form; Infinity/NaN spelled out so a failure is visible. */
export function sci(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  return x === 0 ? '0' : x.toExponential(2);
}

export function ms(x: number): string {
  if (!Number.isFinite(x)) return 'n/a';
  return x >= 100 ? x.toFixed(1) : x >= 1 ? x.toFixed(2) : x.toFixed(3);
}

/** Milliseconds with a unit, for prose lines. */
export function duration(x: number): string {
  return x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${ms(x)} ms`;
}

export function fixed(x: number | null, digits: number): string {
  return x === null || !Number.isFinite(x) ? 'n/a' : x.toFixed(digits);
}

export function tuple(shape: readonly number[]): string {
  return `(${shape.join(', ')})`;
}

export function bytes(n: number): string {
  const gib = n / 2 ** 30;
  return gib >= 1 ? `${gib.toFixed(1)} GiB` : `${(n / 2 ** 20).toFixed(0)} MiB`;
}
