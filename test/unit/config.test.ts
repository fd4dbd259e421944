import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

const TOKEN = 'MTA5.fake-token_for.tests-only-0123456789';

describe('loadConfig', () => {
  it('applies the documented defaults', () => {
    const c = loadConfig({ DISCORD_TOKEN: TOKEN });
    expect(c.voxta.url.href).toBe('http://localhost:5384/');
    expect(c.voxta.apiKey).toBeUndefined();
    expect(c.voxta.maxChats).toBe(2);
    expect(c.voxta.maxVoiceSessions).toBe(1);
    expect(c.logLevel).toBe('info');
    expect(c.voice.bargeIn).toBe('anyone');
    expect(c.discord.apiUrl).toBe('https://discord.com/api');
    expect(c.server).toEqual({
      chatRoleIds: [],
      textRate: { count: 6, perSeconds: 30 },
      voiceRate: { count: 15, perSeconds: 60 },
      maxQueuedTurns: 10,
      explicitCharacters: 'never',
      startVoice: 'join',
    });
  });

  it('reads rates as people write them', () => {
    const rate = (v: string) => loadConfig({ DISCORD_TOKEN: TOKEN, TEXT_RATE_LIMIT: v }).server.textRate;
    expect(rate('10/min')).toEqual({ count: 10, perSeconds: 60 });
    expect(rate('3 per 10 seconds')).toEqual({ count: 3, perSeconds: 10 });
    expect(rate('6/30')).toEqual({ count: 6, perSeconds: 30 });
    expect(rate('100/1h')).toEqual({ count: 100, perSeconds: 3600 });
    expect(rate('off')).toBeUndefined();
  });

  it('names the missing token in one line', () => {
    expect(() => loadConfig({})).toThrow(ConfigError);
    try {
      loadConfig({});
    } catch (e) {
      expect((e as ConfigError).variable).toBe('DISCORD_TOKEN');
      expect((e as Error).message).not.toContain('\n');
    }
  });

  it('does not require a token for the doctor', () => {
    expect(loadConfig({}, { requireDiscordToken: false }).discord.token).toBe('');
  });

  it('moves URL user info into Basic auth and never echoes it in errors', () => {
    const c = loadConfig({ DISCORD_TOKEN: TOKEN, VOXTA_URL: 'https://me:s%40cret@voxta.example:8443/base' });
    expect(c.voxta.basicAuth).toEqual({ username: 'me', password: 's@cret' });
    expect(c.voxta.url.href).toBe('https://voxta.example:8443/base/');
    try {
      loadConfig({ DISCORD_TOKEN: TOKEN, VOXTA_URL: 'not a url with s3cret' });
      expect.unreachable();
    } catch (e) {
      expect((e as ConfigError).variable).toBe('VOXTA_URL');
      expect((e as Error).message).not.toContain('s3cret');
    }
  });

  it.each([
    ['VOXTA_MAX_CHATS', 'two'],
    ['LOG_LEVEL', 'loud'],
    ['BARGE_IN', 'sometimes'],
    ['DISCORD_GUILD_ID', '12ab'],
    ['MIRROR_TRANSCRIPTS', 'maybe'],
    ['VOXTA_URL', 'ftp://x'],
    ['TEXT_RATE_LIMIT', 'fast'],
    ['VOICE_RATE_LIMIT', '15'],
    ['MAX_QUEUED_TURNS', '0'],
    ['EXPLICIT_CHARACTERS', 'yes'],
    ['START_VOICE', 'ask'],
    ['CHAT_ROLE_IDS', 'mods'],
  ])('rejects a malformed %s', (name, value) => {
    expect(() => loadConfig({ DISCORD_TOKEN: TOKEN, [name]: value })).toThrow(new RegExp(name));
  });
});
