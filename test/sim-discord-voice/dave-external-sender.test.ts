import davey from '@snazzah/davey';
import { describe, expect, it } from 'vitest';
import { DaveExternalSender } from '../../sim/discord/voice/dave-external-sender.js';
import { splitCommitWelcome, encodeVarint, MlsReader } from '../../sim/discord/voice/mls-wire.js';

const CHANNEL = '1300000000000000001';
const A = '1100000000000000001';
const B = '1100000000000000002';
const C = '1100000000000000003';
const AUDIO = 0; // davey.MediaType.AUDIO (a const enum: not usable under isolatedModules)

function session(user: string, sender: DaveExternalSender): davey.DAVESession {
  const s = new davey.DAVESession(1, user, CHANNEL);
  s.setExternalSender(sender.packagePayload());
  return s;
}

describe('MLS varints', () => {
  it('round-trips 1, 2 and 4 byte lengths', () => {
    for (const n of [0, 63, 64, 16383, 16384, 1_000_000]) {
      expect(new MlsReader(encodeVarint(n)).varint()).toBe(n);
    }
    expect(encodeVarint(63)).toHaveLength(1);
    expect(encodeVarint(64)).toHaveLength(2);
    expect(encodeVarint(16384)).toHaveLength(4);
  });
});

describe('DaveExternalSender with real davey sessions', () => {
  it('adds two members by signed proposals, splits commit‖welcome, and removes one', () => {
    const sender = new DaveExternalSender();
    const a = session(A, sender);
    const b = session(B, sender);
    const c = session(C, sender);

    const proposals = sender.proposalsPayload(CHANNEL, 0, [
      { kind: 'add', keyPackage: b.getSerializedKeyPackage() },
      { kind: 'add', keyPackage: c.getSerializedKeyPackage() },
    ]);
    const result = a.processProposals(proposals[0]!, proposals.subarray(1), [A, B, C]);
    expect(result.commit).toBeDefined();
    expect(result.welcome).toBeDefined();
    // What @discordjs/voice sends as op 28: commit ‖ welcome, no length prefix.
    const split = splitCommitWelcome(Buffer.concat([result.commit!, result.welcome!]));
    expect(split.commit.equals(result.commit!)).toBe(true);
    expect(split.welcome?.equals(result.welcome!)).toBe(true);

    a.processCommit(split.commit);
    b.processWelcome(split.welcome!);
    c.processWelcome(split.welcome!);
    expect(a.ready && b.ready && c.ready).toBe(true);
    expect(Number(a.epoch)).toBe(1);
    expect(b.getUserIds().sort()).toEqual([A, B, C].sort());
    expect(b.voicePrivacyCode).toBe(a.voicePrivacyCode);

    const frame = Buffer.from([0xfc, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const encrypted = a.encryptOpus(frame);
    expect(encrypted.subarray(-2).equals(Buffer.from([0xfa, 0xfa]))).toBe(true);
    expect(b.decrypt(A, AUDIO, encrypted).equals(frame)).toBe(true);

    // Remove C (leaf index read from C's own session), committed by B this time.
    const leaf = c.ownLeafIndex;
    expect(leaf).not.toBeNull();
    const removal = sender.proposalsPayload(CHANNEL, 1, [{ kind: 'remove', leafIndex: leaf! }]);
    // Every group member processes the proposals (a commit references them); B's commit wins,
    // A's own commit is discarded when it processes B's.
    const r1 = a.processProposals(removal[0]!, removal.subarray(1), [A, B]);
    expect(r1.commit).toBeDefined();
    const r2 = b.processProposals(removal[0]!, removal.subarray(1), [A, B]);
    expect(r2.commit).toBeDefined();
    expect(r2.welcome).toBeUndefined();
    const split2 = splitCommitWelcome(r2.commit!);
    expect(split2.welcome).toBeUndefined();
    a.processCommit(split2.commit);
    b.processCommit(split2.commit);
    expect(a.getUserIds().sort()).toEqual([A, B].sort());
    expect(Number(b.epoch)).toBe(2);
    const after = b.encryptOpus(frame);
    expect(a.decrypt(B, AUDIO, after).equals(frame)).toBe(true);
  });

  it('an Add for a user outside the recognised list is refused by davey (UnexpectedUser)', () => {
    const sender = new DaveExternalSender();
    const a = session(A, sender);
    const stranger = new davey.DAVESession(1, C, CHANNEL);
    const proposals = sender.proposalsPayload(CHANNEL, 0, [{ kind: 'add', keyPackage: stranger.getSerializedKeyPackage() }]);
    expect(() => a.processProposals(0, proposals.subarray(1), [A, B])).toThrow(/UnexpectedUser/);
  });
});
