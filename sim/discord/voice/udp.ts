/**
 * The voice server's UDP socket: IP discovery and RTP, shared by every bot session.
 *
 * - IP discovery: the client sends 74 bytes `u16 type=1, u16 length=70, u32 ssrc, 66 zero bytes`;
 *   we answer `u16 type=2, u16 70, u32 ssrc, address (NUL-terminated ASCII from offset 8),
 *   u16 BE port in the last two bytes`, with the address we saw. That address is also where RTP
 *   for this SSRC goes.
 * - Keep-alives: 8-byte datagrams every 5 s, ignored (the client expects no reply).
 * - RTP: routed by the SSRC in the clear header to the session that owns it.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import type { AddressInfo } from 'node:net';

export const IP_DISCOVERY_SIZE = 74;
const IP_DISCOVERY_REQUEST = 1;
const IP_DISCOVERY_RESPONSE = 2;
const KEEP_ALIVE_SIZE = 8;

export interface UdpPeer {
  address: string;
  port: number;
}

export interface SsrcHandler {
  /** The bot (owner of this SSRC) performed IP discovery from `peer`. */
  onDiscovery(peer: UdpPeer): void;
  /** An RTP datagram with this SSRC arrived. */
  onRtp(packet: Buffer, peer: UdpPeer): void;
}

export function buildDiscoveryResponse(ssrc: number, peer: UdpPeer): Buffer {
  const out = Buffer.alloc(IP_DISCOVERY_SIZE);
  out.writeUInt16BE(IP_DISCOVERY_RESPONSE, 0);
  out.writeUInt16BE(70, 2);
  out.writeUInt32BE(ssrc >>> 0, 4);
  out.write(peer.address, 8, 'ascii'); // the rest is zero: NUL-terminated
  out.writeUInt16BE(peer.port, IP_DISCOVERY_SIZE - 2);
  return out;
}

export class VoiceUdp {
  private readonly handlers = new Map<number, SsrcHandler>();
  /** Datagrams that matched no session (unknown SSRC, malformed): counted, not fatal. */
  unroutedDatagrams = 0;

  private constructor(private readonly socket: Socket, readonly port: number, private readonly onWarn: (msg: string, ctx: object) => void) {
    socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
    socket.on('error', (err) => onWarn('voice UDP socket error', { err: err.message }));
  }

  static async bind(host: string, onWarn: (msg: string, ctx: object) => void): Promise<VoiceUdp> {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    return new VoiceUdp(socket, (socket.address() as AddressInfo).port, onWarn);
  }

  register(ssrc: number, handler: SsrcHandler): void {
    this.handlers.set(ssrc, handler);
  }

  unregister(ssrc: number, handler: SsrcHandler): void {
    if (this.handlers.get(ssrc) === handler) this.handlers.delete(ssrc);
  }

  send(packet: Buffer, peer: UdpPeer): void {
    this.socket.send(packet, peer.port, peer.address);
  }

  private onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    const peer = { address: rinfo.address, port: rinfo.port };
    if (msg.length === KEEP_ALIVE_SIZE) return;
    if (msg.length === IP_DISCOVERY_SIZE && msg.readUInt16BE(0) === IP_DISCOVERY_REQUEST) {
      const ssrc = msg.readUInt32BE(4);
      const handler = this.handlers.get(ssrc);
      if (!handler) {
        this.unroutedDatagrams++;
        this.onWarn('IP discovery for an unknown SSRC', { ssrc, from: `${peer.address}:${peer.port}` });
        return;
      }
      handler.onDiscovery(peer);
      this.send(buildDiscoveryResponse(ssrc, peer), peer);
      return;
    }
    if (msg.length < 12 || msg[0]! >> 6 !== 2) {
      this.unroutedDatagrams++;
      this.onWarn('unrecognised UDP datagram', { bytes: msg.length, from: `${peer.address}:${peer.port}` });
      return;
    }
    const handler = this.handlers.get(msg.readUInt32BE(8));
    if (!handler) {
      this.unroutedDatagrams++;
      return;
    }
    handler.onRtp(msg, peer);
  }

  async close(): Promise<void> {
    this.handlers.clear();
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }
}
