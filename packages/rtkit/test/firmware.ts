// A scripted RTKit firmware for the tests: the IOP side of the diagram in rtkit.md §6.1,
// with knobs for silence, wrong answers and a mailbox that refuses.
import { DevrefError, type Errno } from "@devref/raw-device";
import {
  describeMessage,
  EP_CRASHLOG,
  EP_IOREPORT,
  EP_MGMT,
  EP_OSLOG,
  EP_SYSLOG,
  encodeBufferRequest,
  encodeEpmap,
  encodeHello,
  encodeIopPowerStateAck,
  encodeOslogBufferRequest,
  encodeSetApPowerState,
  encodeSyslogInit,
  encodeSyslogLog,
  MGMT_EPMAP_REPLY,
  MGMT_HELLO_REPLY,
  MGMT_SET_AP_PWR_STATE,
  MGMT_SET_IOP_PWR_STATE,
  MGMT_STARTEP,
  PWR_STATE_IDLE,
  PWR_STATE_INIT,
  PWR_STATE_ON,
  type Rtkit,
  type RtkitTransport,
} from "@devref/rtkit";

/** How the firmware answers a power request: echo it, stay silent, or report another state. */
export type Answer = "echo" | "silent" | number;

export interface FirmwareConfig {
  minVer?: number;
  maxVer?: number;
  /** Endpoints EPMAP announces. */
  endpoints?: readonly number[];
  /** Pages of each buffer request sent on STARTEP; 0 or absent sends none. */
  crashlogPages?: number;
  syslogPages?: number;
  ioreportPages?: number;
  /** OSLog buffer size in bytes. */
  oslogSize?: number;
  /** Firmware-provided addresses for the requests (0: the AP allocates). */
  bufferIova?: number;
  syslogEntries?: number;
  syslogMsgSize?: number;
  /** Whether the IOP acknowledges ON by itself once its system endpoints are started. */
  autoIopAck?: boolean;
  iopAnswer?: Answer;
  apAnswer?: Answer;
}

export interface Sent {
  readonly ep: number;
  readonly msg0: bigint;
  readonly atomic: boolean;
}

const DEFAULTS: Required<FirmwareConfig> = {
  minVer: 11,
  maxVer: 12,
  endpoints: [0, 1, 2, 3, 4, 8, 0x20, 0x21],
  crashlogPages: 1,
  syslogPages: 2,
  ioreportPages: 1,
  oslogSize: 0x2000,
  bufferIova: 0,
  syslogEntries: 8,
  syslogMsgSize: 0x40,
  autoIopAck: true,
  iopAnswer: "echo",
  apAnswer: "echo",
};

const typeOf = (msg0: bigint): number => Number((msg0 >> 52n) & 0xffn);

export class ScriptedFirmware {
  cfg: Required<FirmwareConfig>;
  rtk: Rtkit | null = null;
  /** Everything the AP sent, in order. */
  readonly sent: Sent[] = [];
  /** Whether the firmware answers at all (false: it only records what the AP sends). */
  react = true;
  /** Replies are delivered inside send() when true, else kept until flush(). */
  sync = true;
  readonly outbox: [number, bigint][] = [];
  /** The next sends throw this errno. */
  failSends: { code: Errno; count: number } | null = null;
  /** Where the AP said the buffers are (from the replies). */
  readonly bufferAt: Map<number, number> = new Map();
  /** IOP state as the firmware sees it. */
  iopState = 0;
  version = 0;
  private started = new Set<number>();
  /** A one-shot answer for the next power request, instead of the configured one. */
  nextAnswer: Answer | null = null;
  /** App messages the AP sent. */
  readonly appMessages: Sent[] = [];

  readonly transport: RtkitTransport = {
    send: (ep, msg0, atomic) => this.onSend(ep, msg0, atomic),
  };

  constructor(config: FirmwareConfig = {}) {
    this.cfg = { ...DEFAULTS, ...config };
  }

  attach(rtk: Rtkit): void {
    this.rtk = rtk;
  }

  /** The AP's messages described, for readable assertions. */
  trace(): string[] {
    return this.sent.map((s) => describeMessage(s.ep, s.msg0, "to-iop"));
  }

  /** Sends a message to the AP (through the outbox when not sync). */
  emit(ep: number, msg0: bigint): void {
    if (this.sync) this.rtk!.receive(ep, msg0);
    else this.outbox.push([ep, msg0]);
  }

  /** Delivers the outbox, including what delivering it produces. */
  flush(): void {
    while (this.outbox.length > 0) {
      const [ep, msg0] = this.outbox.shift()!;
      this.rtk!.receive(ep, msg0);
    }
  }

  /** Powers the coprocessor on: it says HELLO. */
  start(): void {
    this.started.clear();
    this.emit(EP_MGMT, encodeHello({ minVer: this.cfg.minVer, maxVer: this.cfg.maxVer }));
  }

  private epmap(): void {
    const bases = new Map<number, number>();
    for (const ep of this.cfg.endpoints) {
      const base = ep >> 5;
      bases.set(base, ((bases.get(base) ?? 0) | (1 << (ep & 31))) >>> 0);
    }
    const sorted = [...bases.keys()].sort((a, b) => a - b);
    sorted.forEach((base, i) => {
      const last = i === sorted.length - 1;
      this.emit(EP_MGMT, encodeEpmap({ base, bitmap: bases.get(base)!, last }));
    });
  }

  private systemEndpointsStarted(): boolean {
    return this.cfg.endpoints.every((ep) => ep === 0 || ep >= 0x20 || this.started.has(ep));
  }

  private onStartEp(ep: number): void {
    this.started.add(ep);
    const iova = this.cfg.bufferIova;
    if (ep === EP_CRASHLOG && this.cfg.crashlogPages > 0) {
      this.emit(ep, encodeBufferRequest({ pages: this.cfg.crashlogPages, iova }));
    } else if (ep === EP_SYSLOG && this.cfg.syslogPages > 0) {
      this.emit(ep, encodeBufferRequest({ pages: this.cfg.syslogPages, iova }));
    } else if (ep === EP_IOREPORT && this.cfg.ioreportPages > 0) {
      this.emit(ep, encodeBufferRequest({ pages: this.cfg.ioreportPages, iova }));
    } else if (ep === EP_OSLOG && this.cfg.oslogSize > 0) {
      this.emit(ep, encodeOslogBufferRequest({ size: this.cfg.oslogSize, iova }));
    }
    if (ep < 0x20 && this.cfg.autoIopAck && this.systemEndpointsStarted()) {
      this.iopState = PWR_STATE_ON;
      this.emit(EP_MGMT, encodeIopPowerStateAck({ state: PWR_STATE_ON }));
    }
  }

  private answer(answer: Answer, requested: number): number | null {
    if (answer === "silent") return null;
    return answer === "echo" ? requested : answer;
  }

  private onMgmt(msg0: bigint): void {
    const lo = Number(msg0 & 0xffff_ffffn);
    const hi = Number(msg0 >> 32n);
    switch (typeOf(msg0)) {
      case MGMT_HELLO_REPLY:
        this.version = lo & 0xffff;
        this.epmap();
        return;
      case MGMT_EPMAP_REPLY:
        return;
      case MGMT_STARTEP:
        this.onStartEp(hi & 0xff);
        return;
      case MGMT_SET_IOP_PWR_STATE: {
        const requested = lo & 0xffff;
        const once = this.nextAnswer;
        this.nextAnswer = null;
        if (requested === PWR_STATE_INIT && this.iopState !== PWR_STATE_IDLE) {
          if (once === "silent") return;
          if (once === null || once === "echo") {
            // Woken from sleep: the handshake starts over.
            this.start();
            return;
          }
        }
        const state = this.answer(once ?? this.cfg.iopAnswer, requested);
        if (state === null) return;
        this.iopState = state;
        this.emit(EP_MGMT, encodeIopPowerStateAck({ state }));
        return;
      }
      case MGMT_SET_AP_PWR_STATE: {
        const once = this.nextAnswer;
        this.nextAnswer = null;
        const state = this.answer(once ?? this.cfg.apAnswer, lo & 0xffff);
        if (state !== null) this.emit(EP_MGMT, encodeSetApPowerState({ state }));
        return;
      }
    }
  }

  private onSend(ep: number, msg0: bigint, atomic: boolean): void {
    if (this.failSends !== null && this.failSends.count > 0) {
      this.failSends.count--;
      throw new DevrefError(this.failSends.code, "test mailbox refuses the message");
    }
    this.sent.push({ ep, msg0, atomic });
    if (!this.react) return;
    if (ep === EP_MGMT) this.onMgmt(msg0);
    else if (ep >= 0x20) this.appMessages.push({ ep, msg0, atomic });
    else if (ep === EP_OSLOG) {
      this.bufferAt.set(ep, Number(msg0 & 0xf_ffff_ffffn) * 0x1000);
    } else if (typeOf(msg0) === 1) {
      this.bufferAt.set(ep, Number(msg0 & 0xfff_ffff_ffffn));
      if (ep === EP_SYSLOG) {
        this.emit(
          EP_SYSLOG,
          encodeSyslogInit({ entries: this.cfg.syslogEntries, msgSize: this.cfg.syslogMsgSize }),
        );
      }
    }
  }

  /** Writes syslog ring entry `index` into `ring` and announces it. */
  syslog(ring: Uint8Array, index: number, context: string, text: string): void {
    const stride = 0x20 + this.cfg.syslogMsgSize;
    const at = index * stride;
    ring.fill(0, at, at + stride);
    ring.set(new TextEncoder().encode(context).subarray(0, 24), at + 8);
    ring.set(new TextEncoder().encode(text).subarray(0, this.cfg.syslogMsgSize), at + 0x20);
    this.emit(EP_SYSLOG, encodeSyslogLog({ index }));
  }

  /** Messages of the given type the AP sent to `ep`. */
  sentTo(ep: number, type?: number): Sent[] {
    return this.sent.filter((s) => s.ep === ep && (type === undefined || typeOf(s.msg0) === type));
  }
}
