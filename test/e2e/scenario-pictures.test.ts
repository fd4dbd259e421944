/**
 * Images in the conversation (issue "the character sees what members post"), production bot
 * against both simulators: a member posts a picture and asks about it; the bot downloads it from
 * Discord's CDN (the simulator's), asks Voxta to look (`/capture Screen`) and answers Voxta's
 * capture request by uploading it; the simulated vision service's reply names the dimensions and
 * hash of the bytes IT received, so the test can tell the exact picture arrived. An oversized
 * picture is downscaled first; a file that is not a picture is ignored; without a vision service
 * on the server, and for a member who opted out of being listened to, pictures are not even
 * downloaded.
 */
import crypto from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { ARIA_ID, type VoxtaSimOptions } from '../../sim/voxta/index.js';
import { fromBot, startE2E, type E2EEnv } from '../harness/env.js';
import { jpeg, noise, png } from '../image/fixtures.js';

let env: E2EEnv | undefined;
afterEach(async () => {
  await env?.close();
  env = undefined;
});

async function boot(voxta: VoxtaSimOptions) {
  const e = await startE2E({ discord: { voice: false }, voxta: { reply: (t) => [`About “${t}”.`], ...voxta } });
  env = e;
  await e.spawnBot({ env: { DISCORD_GUILD_ID: e.guild.id } });
  await e.discord.waitForBotReady(15_000);
  await e.discord.waitForCommands(['start'], e.guild.id, 15_000);
  const h = await e.admin.runCommand(e.text.id, 'start', { character: ARIA_ID });
  await h.waitForFinal();
  return e;
}

const sha8 = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex').slice(0, 8);
const sends = (e: E2EEnv) => e.voxta!.received.filter((m) => m.payload.$type === 'send').map((m) => String(m.payload.text));

describe('scenario: pictures posted in the bound channel', () => {
  it('the character gets the exact picture a member posts and asks about', async () => {
    const e = await boot({ vision: { enabled: true } });
    const picture = await png(320, 200);
    e.alice.say(e.text.id, 'what do you think of my cat?', { attachments: [{ filename: 'cat.png', data: picture, contentType: 'image/png' }] });
    const reply = await e.discord.waitForMessage(e.text.id, (m) => fromBot(e)(m) && m.content.includes('I see your picture'), 15_000);
    expect(reply.content).toContain(`320x200 image/png, sha256 ${sha8(picture)}`);
    const upload = e.voxta!.visionUploads.at(-1)!;
    expect(upload).toMatchObject({ width: 320, height: 200, contentType: 'image/png', sha256: sha8(picture) });
    // Voxta was asked to look, then given the words, in that order.
    expect(sends(e).slice(-2)).toEqual(['/capture Screen', 'what do you think of my cat?']);
  }, 60_000);

  it('a picture with no words still tells the character something was shown; an oversized one is downscaled first', async () => {
    const e = await boot({ vision: { enabled: true } });
    const big = await noise(4000, 3000).jpeg({ quality: 95 }).toBuffer();
    expect(big.length).toBeGreaterThan(4 * 1024 * 1024);
    e.alice.say(e.text.id, '', { attachments: [{ filename: 'holiday.jpg', data: big, contentType: 'image/jpeg' }] });
    await e.discord.waitForMessage(e.text.id, (m) => fromBot(e)(m) && m.content.includes('I see your picture'), 20_000);
    const upload = e.voxta!.visionUploads.at(-1)!;
    expect(Math.max(upload.width, upload.height)).toBeLessThanOrEqual(1536);
    expect(upload.width / upload.height).toBeCloseTo(4000 / 3000, 1);
    expect(upload.bytes.length).toBeLessThanOrEqual(4 * 1024 * 1024);
    expect(sends(e).at(-1)).toBe('(shows a picture)');
  }, 60_000);

  it('a file that is not a picture is ignored: no capture, no reply about it', async () => {
    const e = await boot({ vision: { enabled: true } });
    e.alice.say(e.text.id, 'here are my notes', { attachments: [{ filename: 'notes.txt', data: Buffer.from('not a picture'), contentType: 'text/plain' }] });
    await e.discord.waitForMessage(e.text.id, (m) => fromBot(e)(m) && m.content.includes('About “here are my notes”'), 15_000);
    expect(sends(e)).not.toContain('/capture Screen');
    expect(e.discord.cdnRequests.filter((r) => r.path.includes('notes.txt'))).toEqual([]);
    // A "picture" that is not one (a text file named .png) is fetched, sniffed and refused: the
    // capture request is cancelled at once, and the chat goes on.
    e.alice.say(e.text.id, 'and this one', { attachments: [{ filename: 'fake.png', data: Buffer.from('definitely not a png'), contentType: 'image/png' }] });
    await e.discord.waitForMessage(e.text.id, (m) => fromBot(e)(m) && m.content.includes('About “and this one”'), 15_000);
    expect(e.voxta!.visionUploads).toEqual([]);
    expect(e.voxta!.visionRequests.at(-1)?.outcome).toBe('cancelled');
  }, 60_000);

  it('without a vision service on the server, and for a member who opted out, pictures are not downloaded at all', async () => {
    const e = await boot({ vision: { enabled: false } });
    const picture = await jpeg(64, 64);
    e.alice.say(e.text.id, 'look at this', { attachments: [{ filename: 'a.jpg', data: picture, contentType: 'image/jpeg' }] });
    await e.discord.waitForMessage(e.text.id, (m) => fromBot(e)(m) && m.content.includes('About “look at this”'), 15_000);
    expect(sends(e)).not.toContain('/capture Screen');
    expect(e.discord.cdnRequests.filter((r) => r.path.endsWith('/a.jpg'))).toEqual([]);
    const status = await e.admin.runCommand(e.text.id, 'status');
    const fields = ((await status.waitForFinal()).embeds[0] as { fields: Array<{ name: string; value: string }> }).fields;
    expect(fields.find((f) => f.name === 'Pictures')?.value).toMatch(/^not shown: Voxta has no vision service/);
  }, 60_000);

  it('a member who opted out of listening is never looked at either', async () => {
    const e = await boot({ vision: { enabled: true } });
    await (await e.alice.runCommand(e.text.id, 'listen off')).waitForFinal();
    const picture = await png(50, 50);
    e.alice.say(e.text.id, 'private picture', { attachments: [{ filename: 'me.png', data: picture, contentType: 'image/png' }] });
    await e.discord.waitForMessage(e.text.id, (m) => fromBot(e)(m) && m.content.includes('About “private picture”'), 15_000);
    expect(sends(e)).not.toContain('/capture Screen');
    expect(e.discord.cdnRequests.filter((r) => r.path.endsWith('/me.png'))).toEqual([]);
    expect(e.voxta!.visionUploads).toEqual([]);
  }, 60_000);
});
