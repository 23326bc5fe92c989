// ripple.js and ripple.d.ts agree: the library type-checks against its own declarations
// (tsc --checkJs --strict), and types/usage.ts, written as a TypeScript application would use
// the library, compiles with --strict. No server, no browser.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const WEB = path.resolve(HERE, '../../crates/ripple-server/web');
const TSC = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const STRICT = ['--noEmit', '--strict', '--target', 'es2022', '--module', 'esnext', '--moduleResolution', 'bundler', '--lib', 'es2022,dom'];

async function tsc(...args) {
  try {
    await promisify(execFile)(process.execPath, [TSC, ...STRICT, ...args], { cwd: HERE, timeout: 60_000 });
  } catch (err) {
    assert.fail(`tsc ${args.join(' ')}:\n${err.stdout || err.message}`);
  }
}

test('ripple.js type-checks against ripple.d.ts (--checkJs --strict)', { timeout: 60_000 }, async () => {
  await tsc('--allowJs', '--checkJs', path.join(WEB, 'ripple.js'));
});

test('an application written against ripple.d.ts compiles (--strict)', { timeout: 60_000 }, async () => {
  await tsc(path.join(HERE, 'types/usage.ts'));
});
