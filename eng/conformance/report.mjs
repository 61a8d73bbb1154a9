// Reads the conformance suite's results for every mode and prints what eng/conformance.sh promises:
// a table (suite run × mode → checks passed / failed / warnings), the scenarios that fail bare too (known),
// and the scenarios that pass bare but fail guarded (regressions), with the checks that failed and why.
//
//   node eng/conformance/report.mjs RESULTS_DIR BASELINE_MODE GUARDED_MODE...
//
// RESULTS_DIR/runs.tsv lists the suite runs, one "id<TAB>label" a line, in order. Each mode's results are in
// RESULTS_DIR/<mode>/<run id>/server-<scenario>-<timestamp>/checks.json, as `conformance server -o` writes them.
// Exit code: 0 when every scenario that passes bare passes in every guarded mode (and no check that succeeds bare fails
// guarded inside a scenario that fails bare too), 1 otherwise, 2 when the baseline produced no results at all (the
// harness is broken, so nothing was compared).

import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [resultsDir, baseline, ...guarded] = process.argv.slice(2);
if (!resultsDir || !baseline || guarded.length === 0) {
  console.error('usage: node report.mjs RESULTS_DIR BASELINE_MODE GUARDED_MODE...');
  process.exit(2);
}

const modes = [baseline, ...guarded];
const runs = readFileSync(join(resultsDir, 'runs.tsv'), 'utf8')
  .split('\n')
  .filter((line) => line.trim() !== '')
  .map((line) => {
    const [id, label] = line.split('\t');
    return { id, label: label ?? id };
  });

// server-<scenario>-<ISO timestamp with ':' and '.' as '-'>
const resultDir = /^server-(.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$/;

/** scenario -> { passed, failed, warnings, checks } for one mode and run. */
function readRun(mode, run) {
  const dir = join(resultsDir, mode, run);
  const scenarios = new Map();
  if (!existsSync(dir)) {
    return scenarios;
  }

  for (const entry of readdirSync(dir).sort()) {
    const match = resultDir.exec(entry);
    const file = join(dir, entry, 'checks.json');
    if (!match || !existsSync(file)) {
      continue;
    }

    let checks;
    try {
      checks = JSON.parse(readFileSync(file, 'utf8'));
    } catch (error) {
      checks = [{ id: 'checks.json', status: 'FAILURE', errorMessage: `unreadable checks.json: ${error.message}` }];
    }

    const count = (status) => checks.filter((check) => check.status === status).length;
    scenarios.set(match[1], { passed: count('SUCCESS'), failed: count('FAILURE'), warnings: count('WARNING'), checks });
  }

  return scenarios;
}

const results = new Map(modes.map((mode) => [mode, new Map(runs.map((run) => [run.id, readRun(mode, run.id)]))]));
const lines = [];
const say = (line = '') => lines.push(line);

const totals = (scenarios) => {
  let passed = 0, failed = 0, warnings = 0, failing = 0;
  for (const s of scenarios.values()) {
    passed += s.passed;
    failed += s.failed;
    warnings += s.warnings;
    failing += s.failed > 0 ? 1 : 0;
  }
  return { passed, failed, warnings, failing, count: scenarios.size };
};

// The table.
const labelWidth = Math.max(9, ...runs.map((run) => run.label.length));
const cell = (text) => text.padEnd(24);
say('Checks passed/failed/warnings, and failing scenarios of those run, per suite run and mode:');
say();
say(`${'suite run'.padEnd(labelWidth)} | ${modes.map((mode) => cell(mode === baseline ? `${mode} (bare)` : mode)).join(' | ')}`);
say(`${'-'.repeat(labelWidth)}-|-${modes.map(() => '-'.repeat(24)).join('-|-')}`);
for (const run of runs) {
  const cells = modes.map((mode) => {
    const t = totals(results.get(mode).get(run.id));
    return cell(t.count === 0 ? 'no results' : `${t.passed}/${t.failed}/${t.warnings}, ${t.failing} of ${t.count} failing`);
  });
  say(`${run.label.padEnd(labelWidth)} | ${cells.join(' | ')}`);
}

const short = (text, max = 240) => {
  const flat = String(text ?? '').replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
};
const describe = (check) => {
  const status = check.details?.statusCode ?? check.details?.status;
  const parts = [check.name && check.name !== check.id ? `${check.id} (${check.name})` : check.id];
  if (status !== undefined) {
    parts.push(`HTTP ${status}`);
  }
  if (check.errorMessage) {
    parts.push(short(check.errorMessage));
  }
  return parts.join(': ');
};

// Known: scenarios that fail bare. Listed, never hidden; guarded failing more checks than bare is shown beside them.
say();
say('Known: scenarios that fail bare too (the served SDK\'s gaps or this server\'s, not the guard\'s):');
let known = 0;
for (const run of runs) {
  const bare = results.get(baseline).get(run.id);
  for (const [scenario, b] of bare) {
    if (b.failed === 0) {
      continue;
    }
    known++;
    const guardedCounts = guarded
      .map((mode) => {
        const g = results.get(mode).get(run.id).get(scenario);
        return `${mode} ${g ? g.failed : 'no result'}`;
      })
      .join(', ');
    say(`  ${run.label}: ${scenario} (failed checks: bare ${b.failed}, ${guardedCounts})`);
  }
}
if (known === 0) {
  say('  none');
}

// Regressions: pass bare, fail (or give no result) guarded.
say();
say('Regressions: scenarios that pass bare and fail guarded:');
let regressions = 0;
for (const mode of guarded) {
  for (const run of runs) {
    const bare = results.get(baseline).get(run.id);
    const mine = results.get(mode).get(run.id);
    for (const [scenario, b] of bare) {
      if (b.failed > 0) {
        continue;
      }
      const g = mine.get(scenario);
      if (g && g.failed === 0) {
        continue;
      }
      regressions++;
      say(`  ${mode} | ${run.label} | ${scenario}: ${g ? `${g.passed}/${g.failed}/${g.warnings}` : 'no result (the scenario did not finish)'}`);
      for (const check of g?.checks.filter((c) => c.status === 'FAILURE') ?? []) {
        say(`      ${describe(check)}`);
      }
    }
  }
}
if (regressions === 0) {
  say('  none');
}

// Checks that succeed bare and not guarded, in scenarios the list above does not name: inside a scenario that fails
// bare too (a FAILURE there fails the run as well), or a scenario that still passes but with a warning, a skip or a
// mere INFO where bare succeeded (shown, not failing the run: warnings are advice, and some checks depend on timing).
say();
say('Checks that succeed bare and not guarded, in the other scenarios (FAILURE fails the run; WARNING, SKIPPED or INFO is shown only):');
let worse = 0;
let hiddenFailures = 0;
const successes = (checks) => {
  const count = new Map();
  for (const check of checks) {
    if (check.status === 'SUCCESS') {
      count.set(check.id, (count.get(check.id) ?? 0) + 1);
    }
  }
  return count;
};
for (const mode of guarded) {
  for (const run of runs) {
    const bare = results.get(baseline).get(run.id);
    const mine = results.get(mode).get(run.id);
    for (const [scenario, b] of bare) {
      const g = mine.get(scenario);
      if (!g || (b.failed === 0 && g.failed > 0)) {
        continue; // Listed above.
      }
      const mineOk = successes(g.checks);
      for (const [id, count] of successes(b.checks)) {
        if ((mineOk.get(id) ?? 0) >= count) {
          continue;
        }
        for (const check of g.checks.filter((c) => c.id === id && c.status !== 'SUCCESS')) {
          worse++;
          if (check.status === 'FAILURE') {
            hiddenFailures++;
          }
          say(`  ${mode} | ${run.label} | ${scenario}: ${check.status} ${describe(check)}`);
        }
      }
    }
  }
}
if (worse === 0) {
  say('  none');
}

const baselineTotal = runs.reduce((sum, run) => sum + results.get(baseline).get(run.id).size, 0);
say();
if (baselineTotal === 0) {
  say(`conformance: the baseline (${baseline}) produced no results; nothing was compared`);
} else if (regressions + hiddenFailures > 0) {
  say(`conformance: ${regressions} scenario run(s) pass bare but fail guarded; ${hiddenFailures} check(s) succeed bare but fail guarded in scenarios that fail bare too`);
} else {
  say(`conformance: every scenario that passes bare passes in ${guarded.join(', ')}`);
}

const report = lines.join('\n') + '\n';
process.stdout.write(report);
writeFileSync(join(resultsDir, 'report.txt'), report);
process.exit(baselineTotal === 0 ? 2 : regressions + hiddenFailures > 0 ? 1 : 0);
