import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { redactSecrets } from '../../src/log.js';
import { VoxtaEndpoint } from '../../src/voxta/endpoint.js';
import { VoxtaUrlError } from '../../src/voxta/errors.js';

describe('VoxtaEndpoint', () => {
  it('builds from config: base URL without credentials, Bearer header for the API key', () => {
    const c = loadConfig({ VOXTA_URL: 'http://voxta.lan:5384', VOXTA_API_KEY: 'key-abcdef-123' }, { requireDiscordToken: false });
    const ep = VoxtaEndpoint.fromConfig(c.voxta);
    expect(ep.baseUrl.href).toBe('http://voxta.lan:5384/');
    expect(ep.authHeaders()).toEqual({ Authorization: 'Bearer key-abcdef-123' });
    expect(ep.apiKey).toBe('key-abcdef-123');
    expect(ep.usesBasicAuth).toBe(false);
  });

  it('turns URL user info into Basic auth and strips it from every URL it exposes', () => {
    const ep = new VoxtaEndpoint({ url: 'https://bob:s3cr%40t-pass@proxy.example/voxta/?x=1#h' });
    expect(ep.baseUrl.href).toBe('https://proxy.example/voxta/');
    expect(ep.authHeaders()).toEqual({ Authorization: 'Basic ' + Buffer.from('bob:s3cr@t-pass').toString('base64') });
    expect(ep.usesBasicAuth).toBe(true);
    for (const u of [ep.hubUrl, ep.wsUrl('/x'), ep.audioInputUrl('s'), ep.display, ep.resolve('/api/tts/gens/1').href]) {
      expect(u).not.toContain('bob');
      expect(u).not.toContain('s3cr');
    }
    // Registered: scrubbed from any log text.
    expect(redactSecrets('password is s3cr@t-pass')).not.toContain('s3cr@t-pass');
  });

  it('gives the hub, ws and audio input URLs, keeping a base path and the scheme', () => {
    const ep = new VoxtaEndpoint({ url: 'https://host.example/base' });
    expect(ep.hubUrl).toBe('https://host.example/base/hub');
    expect(ep.audioInputUrl('a b')).toBe('wss://host.example/base/ws/audio/input/stream?sessionId=a%20b');
    const plain = new VoxtaEndpoint({ url: 'http://127.0.0.1:5384' });
    expect(plain.audioInputUrl('s1')).toBe('ws://127.0.0.1:5384/ws/audio/input/stream?sessionId=s1');
    expect(plain.authHeaders()).toEqual({});
  });

  it('resolves relative and absolute audio URLs and refuses other schemes', () => {
    const ep = new VoxtaEndpoint({ url: 'http://127.0.0.1:5384/' });
    expect(ep.resolve('/api/tts/gens/abc').href).toBe('http://127.0.0.1:5384/api/tts/gens/abc');
    expect(ep.resolve('https://cdn.example/a.wav').href).toBe('https://cdn.example/a.wav');
    for (const bad of ['file:///etc/passwd', 'data:audio/wav;base64,AAAA', 'silence:500', '', 'javascript:alert(1)', '//evil.example/x']) {
      expect(() => ep.resolve(bad)).toThrow(VoxtaUrlError);
    }
    expect(ep.isSameOrigin(ep.resolve('https://cdn.example/a.wav'))).toBe(false);
    expect(ep.isSameOrigin(ep.resolve('/x'))).toBe(true);
  });

  it('rejects non-http base URLs without echoing them', () => {
    expect(() => new VoxtaEndpoint({ url: 'ftp://u:topsecretpw@host' })).toThrow(VoxtaUrlError);
    try {
      new VoxtaEndpoint({ url: 'not a url topsecretpw' });
    } catch (e) {
      expect((e as Error).message).not.toContain('topsecretpw');
    }
  });
});
