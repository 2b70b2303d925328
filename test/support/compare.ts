/** Error measures shared by the CPU and GPU suites; one copy lives in src/check so the CLI uses the same. */
export { cpuProblemOf, maxAbsDiffLse, relativeError } from '../../src/check/compare.js';
