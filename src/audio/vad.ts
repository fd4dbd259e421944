/**
 * Energy voice-activity detector for 16 kHz mono PCM frames (pure, no clock: one call per frame).
 *
 * Discord clients already gate their microphone (they stop sending a few frames after the user
 * stops talking), so this VAD's job is the rest: always-open microphones, background hum, the
 * five `F8 FF FE` silence frames at the end of every transmission, and keeping short pauses
 * between words inside one utterance ("hangover"). It compares each frame's RMS with the larger
 * of a fixed floor and a multiple of a slowly tracked noise floor.
 */

export interface EnergyVadOptions {
  /** Frame length in milliseconds (used for the hangover and noise-tracking time constants). Default 20. */
  frameMs?: number;
  /** RMS (int16 units) below which a frame is never voice, whatever the noise floor. Default 300 (≈ −41 dBFS). */
  minRms?: number;
  /** A frame is energetic when its RMS exceeds `noiseFloor × noiseRatio`. Default 3 (≈ +9.5 dB). */
  noiseRatio?: number;
  /** Consecutive energetic frames needed to switch to voiced. Default 1 (Discord already gates). */
  attackFrames?: number;
  /** How long the detector stays voiced after the last energetic frame. Default 200 ms. */
  hangoverMs?: number;
}

export interface VadResult {
  /** The frame belongs to speech (energetic, or within the hangover after energetic frames). */
  voiced: boolean;
  /** The frame itself was above the threshold. */
  energetic: boolean;
  /** RMS of the frame in int16 units. */
  rms: number;
}

/** RMS of int16 samples (0 for an empty frame). */
export function rmsOf(samples: Int16Array): number {
  if (samples.length === 0) return 0;
  let sum = 0;
  for (let i = 0; i < samples.length; i++) {
    const s = samples[i]!;
    sum += s * s;
  }
  return Math.sqrt(sum / samples.length);
}

export class EnergyVad {
  private readonly minRms: number;
  private readonly noiseRatio: number;
  private readonly attackFrames: number;
  private readonly hangoverFrames: number;
  /** Per-frame growth of the noise floor when frames stay above it (≈ +6 dB per 5 s at 20 ms). */
  private readonly riseFactor: number;
  private noiseFloor: number;
  private energeticRun = 0;
  private hangoverLeft = 0;
  private active = false;

  constructor(opts: EnergyVadOptions = {}) {
    const frameMs = opts.frameMs ?? 20;
    this.minRms = opts.minRms ?? 300;
    this.noiseRatio = opts.noiseRatio ?? 3;
    this.attackFrames = Math.max(1, opts.attackFrames ?? 1);
    this.hangoverFrames = Math.max(0, Math.round((opts.hangoverMs ?? 200) / frameMs));
    this.riseFactor = Math.pow(2, frameMs / 5000);
    this.noiseFloor = this.minRms / this.noiseRatio;
  }

  /** Classifies one frame. Frames must be fed in order; any length works, 20 ms is expected. */
  process(frame: Int16Array): VadResult {
    const rms = rmsOf(frame);
    this.trackNoise(rms);
    const threshold = Math.max(this.minRms, this.noiseFloor * this.noiseRatio);
    const energetic = rms > threshold;
    if (energetic) {
      this.energeticRun++;
      if (this.energeticRun >= this.attackFrames) {
        this.active = true;
        this.hangoverLeft = this.hangoverFrames;
      }
    } else {
      this.energeticRun = 0;
      if (this.active) {
        if (this.hangoverLeft > 0) this.hangoverLeft--;
        else this.active = false;
      }
    }
    return { voiced: this.active, energetic, rms };
  }

  /** Forgets the state (a new stream from the same speaker after a long gap). */
  reset(): void {
    this.energeticRun = 0;
    this.hangoverLeft = 0;
    this.active = false;
    this.noiseFloor = this.minRms / this.noiseRatio;
  }

  /** Current noise-floor estimate (int16 RMS). */
  get noise(): number {
    return this.noiseFloor;
  }

  /**
   * Noise floor: follows quiet frames down at once (exact zeros are ignored: they are Discord's
   * silence frames or gaps, not the room), and creeps up slowly under sustained energy so that a
   * constant hum eventually stops counting as speech while words never do.
   */
  private trackNoise(rms: number): void {
    if (rms <= 0) return;
    if (rms < this.noiseFloor) this.noiseFloor = Math.max(1, rms);
    else this.noiseFloor = Math.min(rms, this.noiseFloor * this.riseFactor);
  }
}
