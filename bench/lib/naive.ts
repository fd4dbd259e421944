/**
 * The baselines' DSP, written the way a typical Discord bot does it (and deliberately no better):
 * - 3:1 decimation of a 48 kHz stereo decode to 16 kHz mono: keep every third frame, average L/R
 *   (no anti-alias filter);
 * - linear-interpolation resampling (no filter), streaming, mono or stereo, optional mono→stereo
 *   duplication on the way out (what `StreamType.Raw` needs).
 */

/** 48 kHz interleaved stereo s16 → 16 kHz mono: every third frame, channels averaged. */
export function decimate3StereoToMono(stereo48: Int16Array): Int16Array {
  const frames = Math.floor(stereo48.length / 6);
  const out = new Int16Array(frames);
  for (let i = 0, j = 0; i < frames; i++, j += 6) out[i] = (stereo48[j]! + stereo48[j + 1]!) >> 1;
  return out;
}

/**
 * Streaming linear interpolation from `inRate` to `outRate`. Output sample n sits at input time
 * n·inRate/outRate and is the straight line between its two neighbours. Keeps one input frame of
 * history between calls. Input and output are interleaved with `channels`; with `duplicateToStereo`
 * a mono input comes out as interleaved stereo.
 */
export class LinearResampler {
  private readonly step: number;
  private readonly last: Float64Array;
  /** Input position (in input frames, relative to the start of the next chunk) of the next output. */
  private pos = 0;
  private primed = false;

  constructor(
    readonly inRate: number,
    readonly outRate: number,
    readonly channels: 1 | 2 = 1,
    readonly duplicateToStereo = false,
  ) {
    this.step = inRate / outRate;
    this.last = new Float64Array(channels);
  }

  process(input: Int16Array): Int16Array {
    const ch = this.channels;
    const frames = input.length / ch;
    if (frames === 0) return new Int16Array(0);
    if (!this.primed) {
      // The first input frame has no predecessor: start exactly on it.
      for (let c = 0; c < ch; c++) this.last[c] = input[c]!;
      this.primed = true;
      this.pos = 0;
    }
    const outCh = this.duplicateToStereo ? 2 : ch;
    // Outputs at positions pos, pos+step, … strictly before `frames - 1` (need the right neighbour),
    // where position −1 is the previous chunk's last frame.
    const count = Math.max(0, Math.ceil((frames - 1 - this.pos) / this.step));
    const out = new Int16Array(count * outCh);
    let p = this.pos;
    for (let n = 0; n < count; n++, p += this.step) {
      const i = Math.floor(p);
      const f = p - i;
      for (let c = 0; c < ch; c++) {
        const a = i < 0 ? this.last[c]! : input[i * ch + c]!;
        const b = input[(i + 1) * ch + c]!;
        const v = Math.round(a + (b - a) * f);
        if (outCh === ch) out[n * ch + c] = v;
        else {
          out[n * 2] = v;
          out[n * 2 + 1] = v;
        }
      }
    }
    for (let c = 0; c < ch; c++) this.last[c] = input[(frames - 1) * ch + c]!;
    this.pos = p - frames;
    return out;
  }
}

/** Float variant for quality measurements (no rounding), whole signal at once. */
export function linearResampleFloat(x: Float64Array, inRate: number, outRate: number): Float64Array {
  const step = inRate / outRate;
  const count = Math.floor((x.length - 1) / step) + 1;
  const out = new Float64Array(count);
  for (let n = 0; n < count; n++) {
    const p = n * step;
    const i = Math.floor(p);
    const f = p - i;
    const a = x[i]!;
    const b = i + 1 < x.length ? x[i + 1]! : a;
    out[n] = a + (b - a) * f;
  }
  return out;
}
