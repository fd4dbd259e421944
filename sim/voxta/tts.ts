/**
 * Simulated text-to-speech. Reply chunks register a deferred job (as Voxta's
 * DeferredUrlSpeechGenerator does); the audio is synthesised when the client GETs
 * `/api/tts/gens/<id>`, cached, and may be fetched again.
 *
 * Voices: a tone whose length follows the text (60 ms per character, at least 300 ms) and whose
 * pitch is derived from the job id, or real speech from `espeak-ng` when asked for and installed.
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { decodeWav, encodeWav } from './wav.js';

export const MS_PER_CHARACTER = 60;
export const MIN_SPEECH_MS = 300;
const JOB_TTL_MS = 60 * 60 * 1000;

/** How long the simulated voice speaks `text`, in milliseconds (also used for `silence:<ms>` URLs). */
export function speechDurationMs(text: string): number {
  return Math.max(MIN_SPEECH_MS, text.length * MS_PER_CHARACTER);
}

/** A deterministic tone frequency for a job id: 300–899 Hz, so chunks are audibly different. */
export function toneFrequencyFor(id: string): number {
  const hex = id.replace(/[^0-9a-f]/gi, '').slice(0, 6) || '0';
  return 300 + (parseInt(hex, 16) % 600);
}

/** A sine tone with 10 ms fades (no clicks), at 30 % of full scale. */
export function synthesiseTone(durationMs: number, frequency: number, sampleRate: number): Int16Array {
  const n = Math.round((durationMs / 1000) * sampleRate);
  const fade = Math.min(Math.round(sampleRate * 0.01), Math.floor(n / 2));
  const pcm = new Int16Array(n);
  const amplitude = 0.3 * 32767;
  for (let i = 0; i < n; i++) {
    const envelope = Math.min(1, i / fade, (n - 1 - i) / fade);
    pcm[i] = Math.round(amplitude * envelope * Math.sin((2 * Math.PI * frequency * i) / sampleRate));
  }
  return pcm;
}

let espeakAvailable: boolean | undefined;

/** Whether `espeak-ng` can be run (checked once). */
export function hasEspeak(): boolean {
  if (espeakAvailable === undefined) {
    try {
      execFileSync('espeak-ng', ['--version'], { stdio: 'ignore', timeout: 5000 });
      espeakAvailable = true;
    } catch {
      espeakAvailable = false;
    }
  }
  return espeakAvailable;
}

/** Speech for `text` from espeak-ng, at espeak's own sample rate. */
export function synthesiseEspeak(text: string): Promise<{ pcm: Int16Array; sampleRate: number }> {
  return new Promise((resolve, reject) => {
    execFile(
      'espeak-ng',
      ['-v', 'en-us', '-s', '165', '--stdout', text],
      { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024, timeout: 20_000 },
      (err, stdout) => {
        if (err) return reject(err);
        try {
          const wav = decodeWav(stdout);
          resolve({ pcm: wav.pcm, sampleRate: wav.sampleRate });
        } catch (e) {
          reject(e instanceof Error ? e : new Error(String(e)));
        }
      },
    );
  });
}

export interface TtsJob {
  id: string;
  sessionId: string;
  messageId: string;
  text: string;
  createdAt: number;
}

export interface TtsServed {
  id: string;
  sessionId: string;
  messageId: string;
  text: string;
  sampleRate: number;
  pcm: Int16Array;
  durationMs: number;
  /** Tone frequency in Hz, or null for espeak speech. */
  frequency: number | null;
  at: number;
}

export interface RenderOptions {
  sampleRate: number;
  voice: 'tone' | 'espeak';
}

interface Rendered {
  wav: Buffer;
  served: Omit<TtsServed, 'at'>;
}

/** Deferred TTS jobs of the running server (lost on a simulated restart, like Voxta's). */
export class TtsRegistry {
  private readonly jobs = new Map<string, TtsJob>();
  private readonly cache = new Map<string, Promise<Rendered>>();

  constructor(private readonly onEspeakMissing: () => void) {}

  create(job: Omit<TtsJob, 'id' | 'createdAt'>): TtsJob {
    this.expire();
    const full: TtsJob = { ...job, id: randomUUID(), createdAt: Date.now() };
    this.jobs.set(full.id, full);
    return full;
  }

  /** Voxta keeps a pending speech URL for an hour; so do we (a Map iterates oldest first). */
  private expire(now = Date.now()): void {
    for (const [id, job] of this.jobs) {
      if (now - job.createdAt < JOB_TTL_MS) break;
      this.jobs.delete(id);
      this.cache.delete(id);
    }
  }

  has(id: string): boolean {
    return this.jobs.has(id);
  }

  clear(): void {
    this.jobs.clear();
    this.cache.clear();
  }

  /** Synthesises (once) and returns the WAV for a job; undefined for an unknown id. */
  render(id: string, opts: RenderOptions): Promise<Rendered> | undefined {
    const job = this.jobs.get(id);
    if (!job) return undefined;
    let rendered = this.cache.get(id);
    if (!rendered) {
      rendered = this.synthesise(job, opts);
      this.cache.set(id, rendered);
      // A failed synthesis must not poison later fetches.
      rendered.catch(() => this.cache.delete(id));
    }
    return rendered;
  }

  private async synthesise(job: TtsJob, opts: RenderOptions): Promise<Rendered> {
    let pcm: Int16Array;
    let sampleRate: number;
    let frequency: number | null = null;
    if (opts.voice === 'espeak' && hasEspeak()) {
      ({ pcm, sampleRate } = await synthesiseEspeak(job.text));
    } else {
      if (opts.voice === 'espeak') this.onEspeakMissing();
      sampleRate = opts.sampleRate;
      frequency = toneFrequencyFor(job.id);
      pcm = synthesiseTone(speechDurationMs(job.text), frequency, sampleRate);
    }
    return {
      wav: encodeWav(pcm, sampleRate),
      served: {
        id: job.id,
        sessionId: job.sessionId,
        messageId: job.messageId,
        text: job.text,
        sampleRate,
        pcm,
        durationMs: (pcm.length / sampleRate) * 1000,
        frequency,
      },
    };
  }
}
