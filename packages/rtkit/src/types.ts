//! C header: include/linux/soc/apple/rtkit.h (struct apple_rtkit_ops, struct
//! apple_rtkit_shmem, the apple_rtkit_* functions)

import type { DmaAddr } from "@devref/raw-device";

/** The kernel's message levels the client logs at (dev_err, dev_warn, dev_info, dev_dbg). */
export type RtkitLogLevel = "err" | "warn" | "info" | "dbg";

/**
 * The mailbox channel: how the client sends, and (optionally) how it polls.
 *
 * Inbound messages arrive through {@link Rtkit.receive}, called by whoever owns the mailbox
 * interrupt (a simulator, a test, a real backend).
 */
export interface RtkitTransport {
  /**
   * Sends one message (apple_mbox_send): `msg0` to endpoint `ep`; `atomic` asks for a
   * polling send that never sleeps. Throws a DevrefError (e.g. `ETIMEDOUT` when the FIFO
   * stays full) to refuse it.
   */
  send(ep: number, msg0: bigint, atomic: boolean): void;
  /** Delivers whatever the mailbox holds now (apple_mbox_poll); optional. */
  poll?(): void;
}

/**
 * A buffer the CPU reads by copying out of it (the kernel's `iomem` pointer, read with
 * `memcpy_fromio`): MMIO SRAM, or DMA memory the CPU reaches through accessors rather than
 * a `Uint8Array` view (a `@devref/dma-iommu` coherent allocation).
 */
export interface RtkitIomem {
  /**
   * Copies `dest.length` bytes starting at byte `offset` of the buffer into `dest`. Throw a
   * DevrefError when the buffer cannot be read (the client logs it and goes on without it).
   */
  readBytes(offset: number, dest: Uint8Array): void;
}

/**
 * A shared buffer (struct apple_rtkit_shmem) as `shmemSetup` and `shmemDestroy` see it.
 *
 * `size` is what the firmware asked for, in bytes. `iova` is the firmware's address, or 0
 * when the AP is to allocate: `shmemSetup` then fills it in. `bytes` is the CPU view the
 * client reads syslog entries and the crashlog from (at least `size` long); `iomem` is the
 * copying accessor for a buffer without such a view (used when `bytes` is null); both null
 * when the CPU cannot read the buffer. `isMapped` means the coprocessor owns and maps the
 * buffer itself, so no reply is sent. `private` is the driver's.
 */
export interface RtkitShmem {
  readonly size: number;
  iova: DmaAddr;
  isMapped: boolean;
  bytes: Uint8Array | null;
  iomem: RtkitIomem | null;
  private: unknown;
}

/** The driver's callbacks (struct apple_rtkit_ops); all optional. */
export interface RtkitOps {
  /** An application endpoint's message, from the ordered work queue (process context). */
  recvMessage?(ep: number, msg0: bigint): void;
  /**
   * An application endpoint's message, straight from `receive` (the IRQ path); return true
   * to consume it, false to have it queued for `recvMessage`.
   */
  recvMessageEarly?(ep: number, msg0: bigint): boolean;
  /** The coprocessor crashed: a copy of the crashlog buffer, or null without a readable one. */
  crashed?(crashlog: Uint8Array | null): void;
  /**
   * Maps the firmware's buffer (`iova != 0`) or allocates one (fill in `iova`), and sets
   * `bytes` and `isMapped`; throw a DevrefError to fail the request.
   */
  shmemSetup?(buffer: RtkitShmem): void;
  /** Undoes `shmemSetup`. */
  shmemDestroy?(buffer: RtkitShmem): void;
}

/** What {@link RtkitDma.alloc} gives: the device address and one CPU view of the memory. */
export interface RtkitDmaBuffer {
  readonly iova: DmaAddr;
  /** A direct view of the memory (at least `size` bytes). */
  readonly bytes?: Uint8Array | null;
  /** A copying accessor, for memory without a direct view; used when `bytes` is absent. */
  readonly iomem?: RtkitIomem | null;
}

/** Coherent DMA memory for buffers the AP allocates when `ops.shmemSetup` is absent. */
export interface RtkitDma {
  /**
   * `size` bytes the device reaches at `iova` and the CPU through `bytes` or `iomem` (one of
   * them is required); null when out of memory.
   */
  alloc(size: number): RtkitDmaBuffer | null;
  /** Frees what `alloc` returned. */
  free(iova: DmaAddr, size: number): void;
}

/** The client's only time source: the completion timeouts go through it. */
export interface RtkitTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** What {@link createRtkit} takes. */
export interface RtkitOptions {
  /** The mailbox channel. */
  readonly transport: RtkitTransport;
  /** The driver's callbacks. */
  readonly ops?: RtkitOps;
  /** Coherent DMA memory for AP-allocated buffers (the kernel's dma_alloc_coherent path). */
  readonly dma?: RtkitDma;
  /** Timer functions; the global setTimeout/clearTimeout by default. */
  readonly timers?: RtkitTimers;
  /** Where the client's log lines go; by default `console`, as `<level> <device>: <text>`. */
  readonly log?: (level: RtkitLogLevel, text: string) => void;
  /**
   * Runs the ordered work queue later (queue_work); `queueMicrotask` by default. A simulator
   * passes its event queue so message handling happens in simulated time.
   */
  readonly schedule?: (run: () => void) => void;
}

/** Options of {@link Rtkit.sendMessage}. */
export interface RtkitSendOptions {
  /** Send without sleeping (a polling send); false by default. */
  readonly atomic?: boolean;
}

/**
 * An RTKit client instance (struct apple_rtkit): talks to one coprocessor over one
 * mailbox channel, and keeps an owned reference to its device until freed.
 *
 * **Invariants:** messages are handled one at a time in arrival order on an ordered work
 * queue (except those `recvMessageEarly` consumes); no firmware input throws or leaves the
 * state inconsistent; every method validates its arguments before changing anything.
 *
 * **Errors:** methods reject with a DevrefError carrying the kernel's errno (`ETIME` for a
 * completion that never came, `EINVAL` for a refused call or a wrong acknowledgement, the
 * transport's error for a failed send, `ESHUTDOWN` once freed).
 */
export interface Rtkit extends Disposable {
  /** Waits for the HELLO/EPMAP handshake and the IOP's power-on, then powers the AP side on. */
  boot(): Promise<void>;
  /** Asks the IOP to come back (SET_IOP_PWR_STATE INIT), then boots. EINVAL if running. */
  wake(): Promise<void>;
  /** AP and IOP to QUIESCED, then reinit; both tracked states end QUIESCED. */
  quiesce(): Promise<void>;
  /** AP and IOP to IDLE (state is kept; wake resumes without a new handshake). */
  idle(): Promise<void>;
  /** AP to QUIESCED, IOP to SLEEP, then reinit. */
  shutdown(): Promise<void>;
  /** AP and IOP to OFF, then reinit; the coprocessor usually cannot restart after this. */
  poweroff(): Promise<void>;
  /** Forgets everything learned from the firmware (buffers, endpoints, power states, crash). */
  reinit(): Promise<void>;
  /** Asks the transport to deliver what it holds now. */
  poll(): Promise<void>;
  /** Starts a discovered endpoint (STARTEP); application endpoints need a running RTKit. */
  startEp(ep: number): Promise<void>;
  /** Sends `msg0` to `ep`; application endpoints need a running RTKit. */
  sendMessage(ep: number, msg0: bigint, options?: RtkitSendOptions): Promise<void>;
  /** The mailbox IRQ path: one inbound message. Throws only for invalid arguments. */
  receive(ep: number, msg0: bigint): void;
  /** Resolves when the work queue is empty and nothing made runnable is left to run. */
  settled(): Promise<void>;
  /** Frees the buffers, ends pending calls with ESHUTDOWN and puts the device reference. */
  free(): void;
  /** Same as {@link free}. */
  [Symbol.dispose](): void;
  /** Not crashed, and both tracked power states are ON in their low byte. */
  readonly isRunning: boolean;
  readonly isCrashed: boolean;
  /** Whether {@link free} has run. */
  readonly isFreed: boolean;
  /** The negotiated protocol version, or 0 before a valid HELLO. */
  readonly version: number;
  readonly iopPowerState: number;
  readonly apPowerState: number;
  /** Whether EPMAP announced `ep` (endpoint 0 always). */
  hasEndpoint(ep: number): boolean;
  /** The device's name, as the log lines show it. */
  readonly deviceName: string;
}
