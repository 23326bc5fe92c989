// Node test-runner reporter: the built-in TAP output (with its `# pass N` / `# fail N` summary),
// then the plain line `N passed, N failed` that the project's scripts read.
//
// usage: node --test --test-reporter=./reporter.mjs --test-reporter-destination=stdout
//
// The counts are the runner's own summary; cancelled tests (a hook or a timeout cut them short)
// count as failed. Without a summary (the runner died) it prints `0 passed, 1 failed`.
import { tap } from 'node:test/reporters';

export default async function* reporter(source) {
  const summary = {};
  async function* watched() {
    for await (const event of source) {
      // The run's summary is diagnostics such as "pass 2", "fail 0", "cancelled 0".
      const m = event.type === 'test:diagnostic' && /^(pass|fail|cancelled) (\d+)$/.exec(event.data.message);
      if (m) summary[m[1]] = Number(m[2]);
      yield event;
    }
  }
  yield* tap(watched());
  if (summary.pass === undefined) {
    yield '0 passed, 1 failed\n';
    return;
  }
  yield `${summary.pass} passed, ${(summary.fail ?? 0) + (summary.cancelled ?? 0)} failed\n`;
}
