#!/usr/bin/env node
/**
 * The flash3 command line. Exit status: 0 success, 1 a failure running the command (the message
 * says what to fix), 2 a mistyped command line. FLASH3_DEBUG=1 adds stack traces.
 */
import { Flash3Error, suggest } from '../errors.js';
import { UsageError, commandHelp, parseFlags, type Command } from './args.js';
import './backends.js';
import { benchCommand } from './commands/bench.js';
import { checkCommand } from './commands/check.js';
import { demoCommand } from './commands/demo.js';
import { fp8ErrorCommand } from './commands/fp8Error.js';
import { infoCommand } from './commands/info.js';
import { runCommand } from './commands/run.js';
import { packageVersion } from './package.js';

const COMMANDS: Command[] = [infoCommand, checkCommand, runCommand, benchCommand, fp8ErrorCommand, demoCommand];

function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  return [
    `flash3 ${packageVersion()}: FlashAttention-3-class exact attention for Hopper GPUs, with a float64 CPU backend`,
    '',
    'usage: flash3 <command> [flags]     (flash3 <command> --help for its flags)',
    '',
    'commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}${c.summary}`),
    '',
    'Exit status: 0 ok, 1 failed (message on stderr), 2 bad command line. FLASH3_DEBUG=1 prints stack traces.',
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' ? COMMANDS.find((c) => c.name === rest[0]) : undefined;
    console.log(topic ? commandHelp(topic) : mainHelp());
    return 0;
  }
  if (name === '--version' || name === '-V') {
    console.log(packageVersion());
    return 0;
  }
  const cmd = COMMANDS.find((c) => c.name === name);
  if (!cmd) {
    const guess = suggest(name, COMMANDS.map((c) => c.name));
    throw new UsageError(`unknown command '${name}'${guess ? ` (did you mean '${guess}'?)` : ''}; commands: ${COMMANDS.map((c) => c.name).join(', ')}`);
  }
  let values;
  try {
    values = parseFlags(cmd, rest);
  } catch (e) {
    if (e instanceof UsageError) e.message = `${cmd.name}: ${e.message}; see flash3 ${cmd.name} --help`;
    throw e;
  }
  if (values === null) {
    console.log(commandHelp(cmd));
    return 0;
  }
  try {
    return await cmd.run(values);
  } catch (e) {
    if (e instanceof UsageError) e.message = `${cmd.name}: ${e.message}; see flash3 ${cmd.name} --help`;
    throw e;
  }
}

function report(e: unknown): number {
  const expected = e instanceof Flash3Error || e instanceof UsageError;
  let line = e instanceof Error ? e.message : String(e);
  // An error flash3 did not anticipate: its class name helps a bug report even without the trace.
  if (!expected && e instanceof Error) line = `${e.name}: ${line} (set FLASH3_DEBUG=1 for the stack trace)`;
  process.stderr.write(`flash3: ${line}\n`);
  if (process.env.FLASH3_DEBUG === '1' && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
  return e instanceof UsageError ? 2 : 1;
}

// `flash3 info | head` closes the pipe early; that is not an error worth a stack trace.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code !== 'EPIPE') throw e;
  process.exit(process.exitCode ?? 0);
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.exitCode = report(e);
  },
);
