/**
 * The demo's printed transcript: one line per thing that happened, stamped with the time since
 * the demo started, grouped under numbered steps. Lines of a step are collected while it runs and
 * printed in time order when it ends, so text messages, voice and commands interleave correctly
 * even though they are observed by different means.
 */

const useColour = Boolean(process.stdout.isTTY) && !process.env.NO_COLOR;
const paint = (code: string) => (s: string) => (useColour ? `\x1b[${code}m${s}\x1b[0m` : s);
export const dim = paint('2');
export const bold = paint('1');
export const green = paint('32');
export const red = paint('31');
export const cyan = paint('36');
export const yellow = paint('33');
export const magenta = paint('35');

/** Width of the "who" column. */
const WHO_WIDTH = 15;

export interface Line {
  at: number;
  who: string;
  text: string;
  /** A dimmed note after the text (timings, edit counts). */
  note?: string;
  colour?: (s: string) => string;
}

/** stdout that survives its reader going away (`npm run demo | head`): the demo still ends cleanly. */
let stdoutGone = false;
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') stdoutGone = true;
  else throw err;
});
function writeStdout(s: string): void {
  if (!stdoutGone) process.stdout.write(`${s}\n`);
}

export class Report {
  readonly t0 = Date.now();
  private pending: Line[] = [];
  private stepNo = 0;
  readonly out: (s: string) => void;

  constructor(out: (s: string) => void = writeStdout) {
    this.out = out;
  }

  /** `[ 3.21s]` for a Date.now() timestamp. */
  stamp(at: number): string {
    const s = ((at - this.t0) / 1000).toFixed(2);
    return `[${s.padStart(6)}s]`;
  }

  heading(title: string): void {
    this.flush();
    this.stepNo++;
    this.out('');
    this.out(bold(`${this.stepNo}. ${title}`));
  }

  /** Queues a line for the current step (printed, in time order, at the next flush). */
  line(l: Line): void {
    this.pending.push(l);
  }

  /** Prints a line now (setup, summary). */
  now(text: string): void {
    this.flush();
    this.out(text);
  }

  flush(): void {
    const lines = this.pending.sort((a, b) => a.at - b.at);
    this.pending = [];
    for (const l of lines) {
      const who = l.who.length > WHO_WIDTH ? l.who : l.who.padEnd(WHO_WIDTH);
      const colour = l.colour ?? ((s: string) => s);
      const note = l.note ? `  ${dim(l.note)}` : '';
      this.out(`${dim(this.stamp(l.at))} ${colour(who)} ${l.text}${note}`);
    }
  }

  ok(text: string): void {
    this.flush();
    this.out(`${green('✓')} ${text}`);
  }

  fail(text: string): void {
    this.flush();
    this.out(`${red('✗')} ${text}`);
  }
}

/** `1234` → `1.23 s`, `412` → `412 ms`. */
export function ms(n: number): string {
  return n >= 1000 ? `${(n / 1000).toFixed(2)} s` : `${Math.round(n)} ms`;
}

/** Shortens long text for one transcript line. */
export function clip(text: string, max = 110): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}
