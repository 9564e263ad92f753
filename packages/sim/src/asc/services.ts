//! C source: drivers/soc/apple/rtkit.c (apple_rtkit_common_rx_get_buffer, the syslog,
//! IOReport and OSLog handlers: what the firmware side must send and expect back)
//!
//! The firmware's system-endpoint services: the crashlog, syslog, IOReport and OSLog
//! buffer requests (rtkit.md §7, §10), the syslog ring written by DMA (§8) and the
//! IOReport messages the AP must echo (§11).

import type { DmaPort } from "../dma.js";
import {
  BUFFER_REQUEST,
  EP_CRASHLOG,
  EP_IOREPORT,
  EP_OSLOG,
  EP_SYSLOG,
  IOREPORT_UNKNOWN1,
  IOREPORT_UNKNOWN2,
  OSLOG_BUFFER_REQUEST,
  SYSLOG_INIT,
  SYSLOG_LOG,
} from "./constants.js";
import { ascii } from "./crashlog.js";
import type { AscMailbox } from "./mailbox.js";

/** Service indexes. */
export const SVC_CRASHLOG = 0;
export const SVC_SYSLOG = 1;
export const SVC_IOREPORT = 2;
export const SVC_OSLOG = 3;
const SVC_EP: readonly number[] = [EP_CRASHLOG, EP_SYSLOG, EP_IOREPORT, EP_OSLOG];

/** What the services need from the firmware that runs them. */
export interface ServiceHost {
  readonly asc: AscMailbox;
  /** Sends a message (through the firmware's fault and queue logic). */
  emit(ep: number, hi: number, lo: number): void;
  /** Records a message the firmware refuses. */
  protocolError(ep: number, hi: number, lo: number, why: string): void;
  /** Records a model-detected fault in the trace. */
  fault(name: string, a: number, b: number): void;
}

/** The services' fixed configuration (validated by the firmware). */
export interface ServiceConfig {
  /** Bytes of each buffer (0 = never requested), by service index. */
  readonly sizes: readonly number[];
  /** Firmware-owned address of each buffer (0 = the AP allocates), by service index. */
  readonly addresses: readonly number[];
  readonly syslogEntries: number;
  readonly syslogMessageSize: number;
  /** Send the buffer requests only once the AP power state is ON. */
  readonly afterApPowerOn: boolean;
}

const NO_ADDR = -1;
const BACKLOG_LIMIT = 256;
const SYSLOG_HEADER = 0x20;
const SYSLOG_CONTEXT = 24;

/**
 * The state of the system endpoints for one session (from a HELLO to the next sleep).
 *
 * **Invariants:** a buffer is requested at most once per session; a syslog entry is not
 * rewritten before the AP has acknowledged it.
 */
export class Services {
  /** Log lines lost because the backlog was full or the ring could not be written. */
  syslogDropped = 0;
  /** IOReport messages the AP echoed correctly. */
  ioreportAcks = 0;
  private readonly host: ServiceHost;
  private readonly cfg: ServiceConfig;
  private readonly addr = new Float64Array(4).fill(NO_ADDR);
  private readonly pending = new Uint8Array(4);
  private readonly wanted = new Uint8Array(4);
  private apOn = false;
  private syslogReady = false;
  private readonly inFlight: Uint8Array;
  private readonly stride: number;
  private readonly scratch: Uint8Array;
  private readonly scratchView: DataView;
  private next = 0;
  private seq = 0;
  private readonly backlog: string[] = [];
  private readonly ioPending: number[] = [];

  constructor(host: ServiceHost, cfg: ServiceConfig) {
    this.host = host;
    this.cfg = cfg;
    this.inFlight = new Uint8Array(cfg.syslogEntries);
    this.stride = SYSLOG_HEADER + cfg.syslogMessageSize;
    this.scratch = new Uint8Array(this.stride);
    this.scratchView = new DataView(this.scratch.buffer);
  }

  /** Forgets the session: buffers, syslog ring, pending echoes (the backlog survives). */
  reset(): void {
    this.addr.fill(NO_ADDR);
    this.pending.fill(0);
    this.wanted.fill(0);
    this.inFlight.fill(0);
    this.apOn = false;
    this.syslogReady = false;
    this.next = 0;
    this.ioPending.length = 0;
  }

  /** Address of buffer `svc`, or -1 when there is none yet. */
  address(svc: number): number {
    return this.addr[svc]!;
  }

  /** Configured size of buffer `svc` in bytes. */
  size(svc: number): number {
    return this.cfg.sizes[svc]!;
  }

  /** The master through which the firmware reaches buffer `svc`. */
  master(svc: number): DmaPort {
    return this.cfg.addresses[svc] !== 0 ? this.host.asc.localDma : this.host.asc.dma;
  }

  /** A system endpoint was started. */
  onStart(ep: number): void {
    const svc = SVC_EP.indexOf(ep);
    if (svc < 0 || this.cfg.sizes[svc] === 0) return;
    if (this.cfg.afterApPowerOn && !this.apOn) this.wanted[svc] = 1;
    else this.#request(svc);
  }

  /** The AP power state became ON. */
  onApPowerOn(): void {
    this.apOn = true;
    for (let svc = 0; svc < 4; svc++) {
      if (this.wanted[svc] === 1) {
        this.wanted[svc] = 0;
        this.#request(svc);
      }
    }
  }

  /** A message to the crashlog, syslog, IOReport or OSLog endpoint. */
  receive(ep: number, hi: number, lo: number): void {
    const type = (hi >>> 20) & 0xff;
    if (ep === EP_OSLOG) {
      if (hi >>> 24 === OSLOG_BUFFER_REQUEST) this.#bufferReply(SVC_OSLOG, hi, lo);
      else this.host.protocolError(ep, hi, lo, "unknown OSLog message type");
      return;
    }
    if (type === BUFFER_REQUEST) {
      this.#bufferReply(SVC_EP.indexOf(ep), hi, lo);
    } else if (ep === EP_SYSLOG && type === SYSLOG_LOG) {
      this.#logAck(hi, lo);
    } else if (ep === EP_IOREPORT && (type === IOREPORT_UNKNOWN1 || type === IOREPORT_UNKNOWN2)) {
      this.#ioreportAck(hi, lo);
    } else {
      this.host.protocolError(ep, hi, lo, "unexpected message on a system endpoint");
    }
  }

  /** Queues or writes one syslog line. */
  log(context: string, text: string): void {
    if (!this.syslogReady || this.inFlight[this.next] === 1) {
      if (this.backlog.length >= 2 * BACKLOG_LIMIT) this.syslogDropped++;
      else this.backlog.push(context, text);
      return;
    }
    this.#writeEntry(context, text);
  }

  /** Sends an IOReport message the AP must echo; false when EP 4 has no buffer yet. */
  ioreport(type: number, payloadHi: number, payloadLo: number): boolean {
    if (this.addr[SVC_IOREPORT] === NO_ADDR && this.cfg.sizes[SVC_IOREPORT] !== 0) return false;
    const hi = ((type << 20) | (payloadHi & 0xf_ffff)) >>> 0;
    const lo = payloadLo >>> 0;
    this.ioPending.push(hi, lo);
    this.host.emit(EP_IOREPORT, hi, lo);
    return true;
  }

  #request(svc: number): void {
    if (this.pending[svc] === 1 || this.addr[svc] !== NO_ADDR) return;
    const size = this.cfg.sizes[svc]!;
    const owned = this.cfg.addresses[svc]!;
    let hi: number;
    let lo: number;
    if (svc === SVC_OSLOG) {
      const pfn = owned / 0x1000;
      lo = pfn % 0x1_0000_0000;
      hi = (OSLOG_BUFFER_REQUEST << 24) | (size << 4) | ((pfn - lo) / 0x1_0000_0000);
    } else {
      lo = owned % 0x1_0000_0000;
      hi = (BUFFER_REQUEST << 20) | ((size / 0x1000) << 12) | ((owned - lo) / 0x1_0000_0000);
    }
    if (owned === 0) this.pending[svc] = 1;
    this.host.emit(SVC_EP[svc]!, hi >>> 0, lo >>> 0);
    if (owned !== 0) this.#ready(svc, owned);
  }

  #bufferReply(svc: number, hi: number, lo: number): void {
    const ep = SVC_EP[svc]!;
    if (this.pending[svc] !== 1) {
      this.host.protocolError(ep, hi, lo, "buffer reply without an outstanding request");
      return;
    }
    let addr: number;
    let size: number;
    if (svc === SVC_OSLOG) {
      size = (hi >>> 4) & 0xf_ffff;
      addr = ((hi & 0xf) * 0x1_0000_0000 + lo) * 0x1000;
    } else {
      size = ((hi >>> 12) & 0xff) * 0x1000;
      addr = (hi & 0xfff) * 0x1_0000_0000 + lo;
    }
    if (addr === 0 || size < this.cfg.sizes[svc]!) {
      this.host.protocolError(ep, hi, lo, "buffer reply with address 0 or a smaller size");
      return;
    }
    this.pending[svc] = 0;
    this.#ready(svc, addr);
  }

  #ready(svc: number, addr: number): void {
    this.addr[svc] = addr;
    if (svc !== SVC_SYSLOG) return;
    // INIT: count in 15:0 and entry size in 39:24 (m1n1's widths), both below 256.
    const size = this.cfg.syslogMessageSize;
    this.host.emit(
      EP_SYSLOG,
      (SYSLOG_INIT << 20) | (size >>> 8),
      ((size & 0xff) << 24) | this.cfg.syslogEntries,
    );
    this.syslogReady = true;
    this.#drain();
  }

  #drain(): void {
    let i = 0;
    const b = this.backlog;
    while (i < b.length && this.inFlight[this.next] === 0) {
      this.#writeEntry(b[i]!, b[i + 1]!);
      i += 2;
    }
    if (i > 0) b.splice(0, i);
  }

  #writeEntry(context: string, text: string): void {
    const idx = this.next;
    const s = this.scratch;
    s.fill(0);
    this.scratchView.setUint32(0, this.seq++ >>> 0, true);
    const ctx = ascii(context);
    s.set(ctx.subarray(0, SYSLOG_CONTEXT - 1), 8);
    const msg = ascii(text);
    s.set(msg.subarray(0, this.cfg.syslogMessageSize - 1), SYSLOG_HEADER);
    const dma = this.master(SVC_SYSLOG);
    if (!dma.write(this.addr[SVC_SYSLOG]! + idx * this.stride, s)) {
      this.syslogDropped++;
      this.host.fault("rtkit-syslog-dma-error", idx, dma.status);
      return;
    }
    this.inFlight[idx] = 1;
    this.next = idx + 1 === this.inFlight.length ? 0 : idx + 1;
    this.host.emit(EP_SYSLOG, SYSLOG_LOG << 20, idx);
  }

  #logAck(hi: number, lo: number): void {
    const idx = lo & 0xff;
    if (hi !== SYSLOG_LOG << 20 || lo !== idx || this.inFlight[idx] !== 1) {
      this.host.protocolError(EP_SYSLOG, hi, lo, "syslog acknowledgement that echoes no entry");
      return;
    }
    this.inFlight[idx] = 0;
    if (this.backlog.length > 0) this.#drain();
  }

  #ioreportAck(hi: number, lo: number): void {
    const p = this.ioPending;
    for (let i = 0; i < p.length; i += 2) {
      if (p[i] === hi && p[i + 1] === lo) {
        p.splice(i, 2);
        this.ioreportAcks++;
        return;
      }
    }
    this.host.protocolError(EP_IOREPORT, hi, lo, "IOReport echo of a message never sent");
  }
}
