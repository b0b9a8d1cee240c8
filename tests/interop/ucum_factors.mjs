// The UCUM table of src/fhir/ucum.c against the reference implementation,
// @lhncbc/ucum-lhc (pinned in package-lock.json).
//
// usage: node tests/interop/ucum_factors.mjs BUILD/ucum_dump
//
// ucum_dump prints the table (code canonical factor offset, one row a line),
// so the table exists once, in C. For every row, 1 and 100 of the unit are
// converted to its canonical unit with ucum-lhc's convertUnitTo and compared
// with value * factor + offset; the factor ucum-lhc implies (from the two
// results) is compared with the row's. Every relative error must be below
// 1e-12. Also checked:
// - no two canonical units are convertible in ucum-lhc (one canonical per
//   dimension, DESIGN NOTES 1c of ucum.c: otherwise equal quantities in two
//   "dimensions" would never match);
// - annotated codes ({steps}/d ...) resolve, through ucum_dump CODE..., to the
//   factor ucum-lhc gives them, and malformed or wrongly cased codes that the
//   C table refuses are refused by ucum-lhc too.
// Installs the pinned packages (npm ci, as run.sh does) when ucum-lhc is
// missing. Exit status 0 when everything matches, 1 otherwise.
import { execFileSync } from 'node:child_process';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const TOLERANCE = 1e-12;
const here = dirname(fileURLToPath(import.meta.url));

if (process.argv.length !== 3) {
  console.error('usage: node ucum_factors.mjs BUILD/ucum_dump');
  process.exit(2);
}
const dump = process.argv[2];

async function loadUcum() {
  try {
    return (await import('@lhncbc/ucum-lhc')).default;
  } catch (e) {
    if (e.code !== 'ERR_MODULE_NOT_FOUND') throw e;
    execFileSync('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'],
                 { cwd: here, stdio: 'inherit' });
    return (await import('@lhncbc/ucum-lhc')).default;
  }
}

// Rows of ucum_dump's output: {code, canonical, factor, offset}, or
// {code, canonical: null} for "CODE -". With arguments, line i is about
// args[i] (which may hold a space, as a malformed annotation can).
function runDump(args) {
  const lines = execFileSync(dump, args, { encoding: 'utf8' }).split('\n').filter((l) => l !== '');
  if (args.length && lines.length !== args.length)
    throw new Error(`ucum_dump: ${lines.length} lines for ${args.length} codes`);
  return lines.map((line, i) => {
    let code;
    if (args.length) {
      if (!line.startsWith(`${args[i]} `)) throw new Error(`ucum_dump: bad line: ${line}`);
      code = args[i];
    } else {
      code = line.split(' ')[0];
    }
    const f = line.slice(code.length + 1).split(' ');
    if (f.length === 1 && f[0] === '-') return { code, canonical: null };
    if (f.length !== 3) throw new Error(`ucum_dump: bad line: ${JSON.stringify(line)}`);
    return { code, canonical: f[0], factor: Number(f[1]), offset: Number(f[2]) };
  });
}

function relErr(got, want) {
  if (got === want) return 0;
  return Math.abs(got - want) / Math.max(Math.abs(want), Number.MIN_VALUE);
}

const ucum = await loadUcum();
const utils = ucum.UcumLhcUtils.getInstance();
const failures = [];
let maxValueErr = 0;
let maxFactorErr = 0;

function convert(from, value, to) {
  const r = utils.convertUnitTo(from, value, to);
  return r.status === 'succeeded' ? r.toVal : { failed: (r.msg || []).join(' ') };
}

// Compares one row (the table's or an annotated code's) with ucum-lhc.
function checkRow(row) {
  const got = {};
  for (const v of [1, 100]) {
    const ref = convert(row.code, v, row.canonical);
    if (typeof ref !== 'number') {
      failures.push(`${row.code} -> ${row.canonical}: ucum-lhc refuses: ${ref.failed}`);
      return;
    }
    const mine = v * row.factor + row.offset;
    const e = relErr(mine, ref);
    maxValueErr = Math.max(maxValueErr, e);
    if (!(e < TOLERANCE))
      failures.push(`${v} ${row.code} -> ${row.canonical}: table ${mine}, ucum-lhc ${ref} (rel ${e})`);
    got[v] = ref;
  }
  const refFactor = (got[100] - got[1]) / 99;
  const e = relErr(row.factor, refFactor);
  maxFactorErr = Math.max(maxFactorErr, e);
  if (!(e < TOLERANCE))
    failures.push(`${row.code}: factor ${row.factor}, ucum-lhc ${refFactor} (rel ${e})`);
}

// 1. Every row of the table.
const table = runDump([]);
if (table.length === 0) failures.push('ucum_dump printed no rows');
for (const row of table) checkRow(row);

// 2. One canonical per dimension.
const canonicals = [...new Set(table.map((r) => r.canonical))].sort();
for (const a of canonicals)
  for (const b of canonicals)
    if (a < b && typeof convert(a, 1, b) === 'number')
      failures.push(`canonical units ${a} and ${b} are convertible in ucum-lhc: one dimension`);

// 3. Annotations, and codes the table must refuse.
const annotated = ['{steps}/d', '{steps}/min', '{beats}/min', '{breaths}/min', '{steps}',
                   'mg{glucose}/dL', 'kg{body}', '{}/d', '{x}/{y}', 'mg/{x}', '%{x}'];
for (const row of runDump(annotated)) {
  if (row.canonical === null) failures.push(`${row.code}: not found by vl_ucum_find`);
  else checkRow(row);
}
// Codes vl_ucum_find refuses must be invalid UCUM in ucum-lhc as well
// (wrong case, malformed annotations), not valid units the table lacks.
const refused = ['MG/DL', 'mg/DL', 'KG', 'Kg', 'cel', 'CEL', '[DEGF]', 'mm[hg]', 'mmHg', 'lbs',
                 '[lb_av', '{steps/d', 'steps}/d', '{a b}/d', '{a{b}}/d', '{steps}{x}',
                 '{steps}/D'];
for (const row of runDump(refused)) {
  if (row.canonical !== null) failures.push(`${row.code}: found by vl_ucum_find`);
  const v = utils.validateUnitString(row.code, false);
  if (v.status === 'valid') failures.push(`${row.code}: refused by vl_ucum_find, valid in ucum-lhc`);
}

console.log(`ucum_reference: ${table.length} rows, ${canonicals.length} dimensions ` +
            `(${canonicals.join(' ')}), ${annotated.length} annotated codes; ` +
            `max relative error: values ${maxValueErr.toExponential(2)}, ` +
            `factors ${maxFactorErr.toExponential(2)} (limit ${TOLERANCE})`);
if (failures.length) {
  for (const f of failures) console.error(`FAIL ${f}`);
  process.exit(1);
}
